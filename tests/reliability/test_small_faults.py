"""The smaller faults of the attack run, each on a real daemon (local development mode,
so admin routes answer this host) or through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from personae.daemon.auth import KeyStore
from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.characters.model import Character
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[Daemon]:
    state = tmp_path_factory.mktemp("faults")
    with Daemon(state_dir=state, fakes=FakeEngines(voices=False)) as d:
        yield d


def test_a_key_in_the_url_is_refused_even_next_to_a_header(tmp_path: Path) -> None:
    key, _ = KeyStore(tmp_path / "keys.json").create("game-server")
    with Daemon(state_dir=tmp_path, fakes=FakeEngines(voices=False)) as d:
        header = {"Authorization": f"Bearer {key}"}
        r = httpx.get(f"{d.url}/v1/characters?api_key={key}", headers=header)
        assert r.status_code == 401 and "query string" in r.text
        with connect(f"{d.ws}?api_key={key}", additional_headers=header) as ws:
            event = receive(ws)
            assert event["type"] == "error" and event["error"]["code"] == "key_in_query"
            with pytest.raises(ConnectionClosed):
                receive(ws)


def test_a_template_with_a_format_spec_is_refused(local) -> None:
    bram = load_cast([default_cast_dir()])["bram"].model_dump(mode="json")
    huge = {**bram, "system_prompt": "You are {name:>300000000}."}
    with pytest.raises(ValidationError, match="no format specs"):
        Character.model_validate(huge)
    with pytest.raises(ValidationError, match="not one of"):
        Character.model_validate({**bram, "system_prompt": "{name.__class__}"})
    r = httpx.post(
        f"{local.url}/v1/admin/characters/bram/versions",
        json={"version": "huge", "character": huge},
        timeout=30,
    )
    assert 400 <= r.status_code < 500, r.status_code
    assert len(r.content) < 10_000


def test_a_nul_in_lora_path_and_a_huge_seed_are_400s(local) -> None:
    r = httpx.post(
        f"{local.url}/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "a\x00b"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path"
    body = {"model": "bram", "messages": [{"role": "user", "content": "Hi"}], "seed": 2**80}
    r = httpx.post(f"{local.url}/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "number_out_of_range"


def test_an_adapter_whose_files_lead_out_of_the_store_is_refused(local, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (outside / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    folder = local.state_dir / "adapters" / "evil" / "v1"
    folder.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        os.symlink(outside / name, folder / name)
    r = httpx.post(
        f"{local.url}/v1/load_lora_adapter", json={"lora_name": "evil", "lora_path": "evil/v1"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_path", r.text


def test_a_refused_card_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"spec": "chara_card_v2", "data": {"name": ""}}')
    cli = [sys.executable, "-c", "from personae.sdk.cli import main; main()"]
    run = subprocess.run(
        [*cli, "characters", "import", str(bad), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "card refused" in run.stderr and "Traceback" not in run.stderr
