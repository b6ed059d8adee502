"""`personae config show`: the settings in effect, where each came from, secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from personae.daemon.settings import provenance

CLEAN = {"PERSONAE_CONFIG": None, "PERSONAE_PORT": None, "PERSONAE_HOST": None}


def _rows(output: str) -> dict[str, tuple[str, str]]:
    """name -> (value, origin) from `config show` lines."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, rest = line.split(maxsplit=1)
        value, origin = rest.rsplit("  ", 1)
        rows[name] = (value.strip(), origin.strip())
    return rows


def test_each_value_says_where_it_came_from(
    personae: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "personae.toml"
    config.write_text('host = "0.0.0.0"\nport = 9000\nmax_text_chars = 500\n')
    result = runner.invoke(
        personae,
        ["config", "show", "--config", str(config)],
        env={**CLEAN, "PERSONAE_PORT": "9100"},
    )
    assert result.exit_code == 0, result.output
    assert f"# config file: {config}" in result.output
    rows = _rows(result.stdout)
    assert rows["port"] == ("9100", "environment PERSONAE_PORT")  # environment beats the file
    assert rows["host"] == ("0.0.0.0", f"file {config}")
    assert rows["max_text_chars"] == ("500", f"file {config}")
    assert rows["reply_timeout_s"] == ("60.0", "default")


def test_secrets_are_masked(personae: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(
        personae,
        ["config", "show"],
        env={
            **CLEAN,
            "PERSONAE_VLLM_API_KEY": "sk-very-secret",
            "PERSONAE_DATABASE_URL": "postgresql://npc:hunter2@db.internal/personae",
        },
    )
    assert result.exit_code == 0, result.output
    assert "sk-very-secret" not in result.output and "hunter2" not in result.output
    rows = _rows(result.stdout)
    assert rows["database_url"] == (
        "postgresql://npc:***@db.internal/personae",
        "environment PERSONAE_DATABASE_URL",
    )
    assert rows["vllm_api_key"][0] == "**********"


def test_a_missing_config_file_or_a_bad_value_is_one_line(
    personae: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    missing = runner.invoke(
        personae, ["config", "show", "--config", str(tmp_path / "nope.toml")], env=CLEAN
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
    bad = runner.invoke(personae, ["config", "show"], env={**CLEAN, "PERSONAE_PORT": "-1"})
    assert bad.exit_code == 1 and "invalid settings" in bad.output
    assert "Traceback" not in bad.output
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    unreadable = runner.invoke(personae, ["config", "show", "--config", str(broken)], env=CLEAN)
    assert unreadable.exit_code == 1 and "invalid settings" in unreadable.output


def test_nested_environment_values_count_as_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONAE_CONFIG", raising=False)
    monkeypatch.setenv("PERSONAE_DEPLOY_MIN_METRICS__EVAL_LOSS", "1.2")
    origin = provenance({"port": 1})
    assert origin["deploy_min_metrics"] == "environment PERSONAE_DEPLOY_MIN_METRICS"
    assert origin["port"] == "argument"
