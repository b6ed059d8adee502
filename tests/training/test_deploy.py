"""Using a trained character: the characters folder tolerates adapter files, and
`personae characters add RUN_DIR` deploys into the daemon's store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.daemon.characters import VoiceConfig, default_cast_dir, load_cast
from personae.daemon.errors import ConfigError
from personae.sdk.cli import load_commands
from personae.training.store import character_toml


def _adapter_folder(root: Path, cid: str = "bram", version: str = "v1") -> Path:
    """What `personae train fit` leaves in the store for one character."""
    bram = load_cast([default_cast_dir()])[cid]
    folder = root / cid / version
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    (folder / "manifest.json").write_text(json.dumps({"character": cid, "version": version}))
    (folder / "voice.json").write_text(json.dumps({"rate": 1.0}))
    (folder / "tokenizer.json").write_text("{not json")
    (folder / "character.toml").write_text(
        character_toml(bram, voice=VoiceConfig(), version=version)
    )
    return folder


def test_a_characters_folder_with_adapter_files_skips_them_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _adapter_folder(tmp_path / "store")
    with caplog.at_level(logging.WARNING):
        cast = load_cast([folder])
    assert list(cast) == ["bram"] and cast["bram"].adapter is not None
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("adapter_config.json", "manifest.json", "voice.json", "tokenizer.json"):
        assert name in skipped


def test_a_broken_character_file_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('id = "x"\nname = "X"\n')  # no description
    with pytest.raises(ConfigError, match="invalid character"):
        load_cast([tmp_path])


def test_characters_add_deploys_every_trained_character_of_a_run(tmp_path: Path) -> None:
    store = tmp_path / "run-store"
    bram = _adapter_folder(store, "bram")
    wren = _adapter_folder(store, "wren")
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(
        json.dumps(
            {
                "ingest": {"fingerprint": "a"},
                "fit:bram": {"fingerprint": "b", "adapter": str(bram)},
                "fit:wren": {"fingerprint": "c", "adapter": str(wren)},
            }
        )
    )
    cast_dir, daemon_store = tmp_path / "cast", tmp_path / "adapters"
    result = CliRunner().invoke(
        load_commands(),
        [
            "characters",
            "add",
            str(run),
            "--characters-dir",
            str(cast_dir),
            "--adapters-dir",
            str(daemon_store),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (daemon_store / "bram/v1/adapter_model.safetensors").is_file()
    assert (daemon_store / "wren/v1/adapter_config.json").is_file()
    cast = load_cast([cast_dir])
    assert sorted(cast) == ["bram", "wren"]
    assert cast["wren"].adapter is not None and cast["wren"].adapter.version == "v1"


def test_characters_add_names_what_is_wrong(tmp_path: Path) -> None:
    runner = CliRunner()
    cmd = ["characters", "add", str(tmp_path), "--characters-dir", str(tmp_path / "c")]
    result = runner.invoke(load_commands(), cmd)
    assert result.exit_code == 2 and "no state.json" in result.output
    (tmp_path / "state.json").write_text(json.dumps({"ingest": {"fingerprint": "a"}}))
    result = runner.invoke(load_commands(), cmd)
    assert result.exit_code == 2 and "personae train fit" in result.output


def test_the_daemon_starts_on_an_adapter_folder_and_serves_its_character(tmp_path: Path) -> None:
    import httpx

    from personae.daemon.testing.launcher import Daemon, FakeEngines

    folder = _adapter_folder(tmp_path / "store")
    settings = {
        "database_url": f"sqlite:///{tmp_path / 'personae.db'}",
        "keys_file": tmp_path / "keys.json",
        "adapters_dir": tmp_path / "store",
        "characters_dirs": json.dumps([str(folder)]),
    }
    with Daemon(state_dir=tmp_path, fakes=FakeEngines(), settings=settings) as daemon:
        listed = httpx.get(f"{daemon.url}/v1/characters", timeout=30).json()["characters"]
        log = daemon.log.read_text()
    assert [c["id"] for c in listed] == ["bram"]
    assert "adapter_config.json: not a character file" in log
