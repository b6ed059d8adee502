"""`personae --version`, each command's own --help, and `personae bench`."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from personae.daemon import cli as daemon_cli

PERSONAE = Path(sys.executable).parent / "personae"


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of a (Typer's) click group, as argument paths."""
    out = []
    for name, command in group.commands.items():
        out.append((*path, name))
        if hasattr(command, "commands"):
            out += _commands(command, (*path, name))
    return out


def test_version_is_the_installed_one(personae: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(personae, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"personae {metadata.version('personae')}"


def test_the_command_has_every_package_s_commands(personae: typer.Typer) -> None:
    names = {path[0] for path in _commands(typer.main.get_group(personae))}
    assert names >= {"serve", "chat", "train", "characters", "bench", "prepare", "keys", "config"}


def test_every_command_s_help_is_its_own(personae: typer.Typer, runner: CliRunner) -> None:
    paths = _commands(typer.main.get_group(personae))
    assert ("train", "run") in paths and ("characters", "import") in paths
    for path in paths:
        result = runner.invoke(personae, [*path, "--help"], prog_name="personae")
        assert result.exit_code == 0, (path, result.output)
        assert f"Usage: personae {' '.join(path)} " in result.output, path


def test_train_stage_help_shows_the_stage_s_options(
    personae: typer.Typer, runner: CliRunner
) -> None:
    out = runner.invoke(personae, ["train", "fit", "--help"]).output
    assert "--character" in out and "--adapters-dir" in out and "--force" in out


def test_bench_help_lists_the_benchmarks(personae: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(personae, ["bench", "--help"], prog_name="personae")
    assert result.exit_code == 0
    assert "Usage: personae bench" in result.output and "voice_to_voice" in result.output


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bench/ folder whose one benchmark writes down the arguments it was given."""
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "echo.py").write_text(
        "import sys, pathlib\n"
        "pathlib.Path(__file__).with_suffix('.args').write_text(' '.join(sys.argv[1:]))\n"
    )
    monkeypatch.setattr(daemon_cli, "BENCH_DIR", folder)
    return folder


def test_bench_passes_its_arguments_and_help_to_the_benchmark(
    personae: typer.Typer, runner: CliRunner, bench_dir: Path
) -> None:
    assert runner.invoke(personae, ["bench", "echo", "--runs", "3"]).exit_code == 0
    assert (bench_dir / "echo.args").read_text() == "--runs 3"
    assert runner.invoke(personae, ["bench", "echo", "--help"]).exit_code == 0
    assert (bench_dir / "echo.args").read_text() == "--help"


def test_bench_names_the_benchmarks_when_one_is_unknown(
    personae: typer.Typer, runner: CliRunner, bench_dir: Path
) -> None:
    result = runner.invoke(personae, ["bench", "nope"])
    assert result.exit_code == 2 and "available: echo" in result.output


def test_bench_without_a_checkout_says_so(
    personae: typer.Typer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a wheel install: site-packages/personae has no bench/ folder
    monkeypatch.setattr(daemon_cli, "BENCH_DIR", tmp_path / "site-packages" / "personae" / "bench")
    result = runner.invoke(personae, ["bench", "voice_to_voice"])
    assert result.exit_code == 1
    assert "source checkout" in result.output and "Traceback" not in result.output


def test_installed_command_passes_help_to_the_benchmark_and_the_training_stage() -> None:
    bench = subprocess.run(
        [PERSONAE, "bench", "voice_to_voice", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: voice_to_voice.py" in bench.stdout and "--turns" in bench.stdout
    train = subprocess.run(
        [PERSONAE, "train", "run", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage: personae train run" in train.stdout and "--adapters-dir" in train.stdout
