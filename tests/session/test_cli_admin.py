"""`personae characters ...` and `personae experiments ...` against a running daemon."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from personae.daemon.app import create_app
from personae.daemon.characters import default_cast_dir, load_character
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, served
from personae.sdk.cli import load_commands
from tests.session.test_deployments import adapter_echo, fake_adapter

runner = CliRunner()
# the whole `personae` command: card import/export come from the daemon package
app = load_commands()


def personae(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_register_deploy_rollback_history_and_experiments(tmp_path: Path) -> None:
    fake_adapter(tmp_path / "bram-voice" / "v2", 2)
    svc = fake_service(llm=FakeLLM(reply=adapter_echo), adapters_dir=tmp_path)
    with served(create_app(service=svc)) as address:
        url = ("--url", f"http://{address}")
        assert "bram" in personae("characters", "list", *url)
        personae(
            "characters",
            "register",
            "bram",
            "2",
            "--adapter",
            "bram-voice/v2",
            "--metric",
            "eval_loss=1.2",
            *url,
        )
        assert "eval_loss=1.2" in personae("characters", "versions", "bram", *url)
        assert "file -> 2" in personae("characters", "deploy", "bram", "2", *url)
        assert svc.cast["bram"].adapter is not None and svc.cast["bram"].adapter.version == "v2"
        bad = runner.invoke(app, ["characters", "rollback", "bram", *url])
        assert bad.exit_code == 1 and "error 409" in bad.output and "roll back" in bad.output
        assert "deploy" in personae("characters", "history", "bram", *url)
        personae(
            "experiments",
            "create",
            "greet",
            "--character",
            "mara",
            "--variant",
            "a=1",
            "--variant",
            "b=1",
            *url,
        )
        assert '"experiment": "greet"' in personae("experiments", "results", "greet", *url)
        assert "stopped" in personae("experiments", "stop", "greet", *url)
    unreachable = runner.invoke(app, ["characters", "list", "--url", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output


def test_card_export_then_import_round_trip(tmp_path: Path) -> None:
    personae(
        "characters",
        "export",
        str(default_cast_dir() / "mara.toml"),
        "--out",
        str(tmp_path / "mara.png"),
    )
    assert (tmp_path / "mara.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = personae(
        "characters", "import", str(tmp_path / "mara.png"), "--out", str(tmp_path / "cast")
    )
    written = Path(out.split(": ", 1)[1].strip())
    back = load_character(written)
    original = load_character(default_cast_dir() / "mara.toml")
    assert (back.name, back.description, back.greeting) == (
        original.name,
        original.description,
        original.greeting,
    )
