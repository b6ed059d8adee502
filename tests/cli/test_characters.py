"""`personae characters` alone: the cast from a daemon, else from the character files."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from personae.daemon.app import create_app
from personae.daemon.testing.harness import fake_service, served
from personae.sdk import cli_admin

NOBODY = "http://127.0.0.1:9"  # the discard port: nothing listens there


def test_lists_the_cast_a_daemon_serves(personae: typer.Typer, runner: CliRunner) -> None:
    with served(create_app(service=fake_service())) as address:
        result = runner.invoke(personae, ["characters", "--url", f"http://{address}"])
    assert result.exit_code == 0, result.output
    assert f"the cast served by http://{address}" in result.output
    assert {line.split()[0] for line in result.stdout.splitlines()} == {"bram", "mara", "wren"}


def test_without_a_daemon_lists_the_bundled_cast_and_says_so(
    personae: typer.Typer, runner: CliRunner
) -> None:
    result = runner.invoke(
        personae, ["characters", "--url", NOBODY], env={"PERSONAE_CHARACTERS_DIRS": None}
    )
    assert result.exit_code == 0, result.output
    assert f"no daemon answers at {NOBODY}" in result.output and "bundled cast" in result.output
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["bram", "Bram"],
        ["mara", "Mara"],
        ["wren", "Wren"],
    ]


def test_without_a_daemon_lists_the_configured_character_files(
    personae: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "tilda.toml").write_text(
        'id = "tilda"\nname = "Tilda"\ndescription = "A ferrywoman."\n'
    )
    result = runner.invoke(
        personae,
        ["characters", "--url", NOBODY],
        env={"PERSONAE_CHARACTERS_DIRS": f'["{tmp_path}"]'},
    )
    assert result.exit_code == 0, result.output
    assert str(tmp_path) in result.output
    assert result.stdout.split()[:2] == ["tilda", "Tilda"]


def test_with_the_sdk_alone_and_no_daemon_it_says_what_to_do(
    personae: typer.Typer, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what the daemon package's lister answers when its extra is not installed
    monkeypatch.setattr(cli_admin, "_offline_cast", [lambda: None])
    result = runner.invoke(personae, ["characters", "--url", NOBODY])
    assert result.exit_code == 1
    assert "cannot reach" in result.output and "personae[daemon]" in result.output


def test_subcommands_still_talk_to_the_daemon(personae: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(personae, ["characters", "list", "--url", NOBODY])
    assert result.exit_code == 1 and "cannot reach" in result.output
