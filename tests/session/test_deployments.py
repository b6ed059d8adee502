"""Versions deployed and rolled back while the daemon runs; A/B variants per player."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pytest
from websockets.sync.client import connect as ws_connect

from personae.daemon.app import create_app
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, served


def fake_adapter(folder: Path, seed: int) -> None:
    """A well-formed adapter folder (the FakeLLM never reads the weights)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    save_file(
        {"lora_A": np.full((8, 4), seed, np.float32)}, str(folder / "adapter_model.safetensors")
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    for v in (1, 2):
        fake_adapter(tmp_path / "bram-voice" / f"v{v}", v)
    return tmp_path


def adapter_echo(req) -> str:
    return f"Spoken with {req.adapter or 'base'}."


class Daemon:
    """An app under uvicorn on 127.0.0.1: REST through httpx, sessions over websockets."""

    def __init__(self, app) -> None:
        self._ctx = served(app)

    def __enter__(self) -> Daemon:
        self.address = self._ctx.__enter__()
        self.http = httpx.Client(base_url=f"http://{self.address}", timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()
        self._ctx.__exit__(*exc)

    def post(self, path: str, json: dict) -> httpx.Response:
        return self.http.post(path, json=json)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def websocket_connect(self, path: str):
        return ws_connect(f"ws://{self.address}{path}", max_size=None)


def receive(ws) -> dict:
    frame = ws.recv(timeout=30)
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)


def ask(ws, text: str, character: str = "bram") -> dict:
    ws.send(
        msgpack.packb(
            {
                "type": "conversation.item.create",
                "item": {"content": [{"type": "input_text", "text": text}]},
            }
        )
    )
    ws.send(msgpack.packb({"type": "response.create", "response": {"character": character}}))
    while True:
        event = receive(ws)
        if event["type"] == "error":
            raise AssertionError(event)
        if event["type"] == "response.done":
            return event["response"]


def test_deploy_mid_conversation_then_roll_back(store: Path) -> None:
    llm = FakeLLM(reply=adapter_echo)
    svc = fake_service(llm=llm, adapters_dir=store)
    with Daemon(create_app(service=svc)) as client:
        for version in ("1", "2"):
            r = client.post(
                "/v1/admin/characters/bram/versions",
                json={
                    "version": version,
                    "adapter": {"name": "bram-voice", "version": f"v{version}"},
                    "metrics": {"eval_loss": 1.5},
                },
            )
            assert r.status_code == 201, r.text
            assert r.json()["adapter"]["sha256"]
        with client.websocket_connect("/v1/realtime") as ws:
            receive(ws)  # session.created
            assert ask(ws, "Who are you?")["output_text"] == "Spoken with base."
            assert (
                client.post("/v1/admin/characters/bram/deploy", json={"version": "1"}).status_code
                == 200
            )
            assert ask(ws, "And now?")["output_text"] == "Spoken with bram-voice@v1."
            assert (
                client.post("/v1/admin/characters/bram/deploy", json={"version": "2"}).status_code
                == 200
            )
            assert ask(ws, "And now?")["output_text"] == "Spoken with bram-voice@v2."
            r = client.post("/v1/admin/characters/bram/rollback", json={})
            assert r.status_code == 200 and r.json()["version"] == "1"
            assert ask(ws, "And now?")["output_text"] == "Spoken with bram-voice@v1."
            # nothing before the first deployment: refused, v1 keeps serving
            r = client.post("/v1/admin/characters/bram/rollback", json={})
            assert r.status_code == 409 and r.json()["error"]["code"] == "no_previous_version"
            r = client.post("/v1/admin/characters/bram/deploy", json={"version": "7"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_version"
            assert ask(ws, "Still you?")["output_text"] == "Spoken with bram-voice@v1."
            # other characters were never touched
            assert ask(ws, "Mara?", "mara")["output_text"] == "Spoken with base."
        history = client.get("/v1/admin/characters/bram/history").json()["history"]
        assert [(h["action"], h["version"]) for h in history] == [
            ("deploy", "1"),
            ("deploy", "2"),
            ("rollback", "1"),
        ]
        listed = {c["id"]: c for c in client.get("/v1/admin/characters").json()["characters"]}
        assert listed["bram"]["serving_version"] == "1"
    # each reply was logged with the version that produced it
    turns = svc.runtime.turns.recent("bram", "player", limit=20)
    spoken = [(t.version, t.text) for t in turns if t.role == "character"]
    assert (None, "Spoken with base.") in spoken
    assert ("2", "Spoken with bram-voice@v2.") in spoken
    assert spoken[-1] == ("1", "Spoken with bram-voice@v1.")


def test_a_reply_under_way_finishes_on_the_version_it_started_with(store: Path) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(req) -> str:
        if req.messages[-1].content == "Take your time.":  # only the player's reply waits
            started.set()
            release.wait(10)
        return adapter_echo(req)

    svc = fake_service(llm=FakeLLM(reply=slow), adapters_dir=store)
    with Daemon(create_app(service=svc)) as client:
        for version in ("1", "2"):
            client.post(
                "/v1/admin/characters/bram/versions",
                json={
                    "version": version,
                    "adapter": {"name": "bram-voice", "version": f"v{version}"},
                },
            )
        client.post("/v1/admin/characters/bram/deploy", json={"version": "1"})
        with client.websocket_connect("/v1/realtime") as ws:
            receive(ws)
            ws.send(
                msgpack.packb(
                    {
                        "type": "conversation.item.create",
                        "item": {"content": [{"type": "input_text", "text": "Take your time."}]},
                    }
                )
            )
            ws.send(msgpack.packb({"type": "response.create", "response": {"character": "bram"}}))
            assert started.wait(10)
            assert (
                client.post("/v1/admin/characters/bram/deploy", json={"version": "2"}).status_code
                == 200
            )
            release.set()
            while (e := receive(ws))["type"] != "response.done":
                pass
            assert e["response"]["output_text"] == "Spoken with bram-voice@v1."
            started.clear()
            assert ask(ws, "Next?")["output_text"] == "Spoken with bram-voice@v2."
        stats = client.get("/v1/admin/adapters").json()
        assert set(stats["names"]) == {"bram-voice@v1", "bram-voice@v2"} and stats["pinned"] == 0


def test_a_corrupt_adapter_is_refused_and_the_serving_version_stays(store: Path) -> None:
    svc = fake_service(llm=FakeLLM(reply=adapter_echo), adapters_dir=store)
    with Daemon(create_app(service=svc)) as client:
        for version in ("1", "2"):
            client.post(
                "/v1/admin/characters/bram/versions",
                json={
                    "version": version,
                    "adapter": {"name": "bram-voice", "version": f"v{version}"},
                },
            )
        client.post("/v1/admin/characters/bram/deploy", json={"version": "1"})
        (store / "bram-voice" / "v2" / "adapter_model.safetensors").write_bytes(b"tampered")
        r = client.post("/v1/admin/characters/bram/deploy", json={"version": "2"})
        assert r.status_code == 422 and r.json()["error"]["code"] in {
            "adapter_corrupt",
            "validation_failed",
        }
        with client.websocket_connect("/v1/realtime") as ws:
            receive(ws)
            assert ask(ws, "Hello?")["output_text"] == "Spoken with bram-voice@v1."


def test_ab_variants_split_players_stably(store: Path) -> None:
    svc = fake_service(llm=FakeLLM(reply=adapter_echo), adapters_dir=store)
    with Daemon(create_app(service=svc)) as client:
        client.post(
            "/v1/admin/characters/bram/versions",
            json={"version": "2", "adapter": {"name": "bram-voice", "version": "v2"}},
        )
        r = client.post(
            "/v1/admin/experiments",
            json={
                "name": "bram-v2-test",
                "character": "bram",
                "variants": [
                    {"name": "control", "weight": 1},
                    {"name": "v2", "weight": 1, "version": "2"},
                ],
            },
        )
        assert r.status_code == 201, r.text
        seen: dict[str, str] = {}
        for i in range(12):
            player = f"player-{i}"
            with client.websocket_connect("/v1/realtime") as ws:
                receive(ws)
                ws.send(msgpack.packb({"type": "session.update", "session": {"player_id": player}}))
                first = ask(ws, "Hi")["output_text"]
                second = ask(ws, "Again")["output_text"]
            assert first == second  # a player stays in their variant
            seen[player] = first
        assert set(seen.values()) == {"Spoken with base.", "Spoken with bram-voice@v2."}
        results = client.get("/v1/admin/experiments/bram-v2-test").json()
        turns = {v["name"]: v["metrics"]["turns"]["n"] for v in results["variants"]}
        assert sum(turns.values()) == 24
        assert turns["v2"] == 2 * sum(1 for t in seen.values() if t.endswith("v2."))


def test_admin_routes_refuse_remote_clients_without_keys() -> None:
    from fastapi.testclient import TestClient

    svc = fake_service()
    with TestClient(create_app(service=svc), client=("203.0.113.9", 5000)) as client:
        assert client.get("/v1/admin/characters").status_code == 403
