"""SIGKILL the daemon while it writes; every acknowledged write survives, the database
passes its integrity check. The long run is `personae bench crash` (bench/crash.py)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from websockets.sync.client import connect

from personae.daemon.testing.crashing import run, verify
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive, say, send, until


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    report = asyncio.run(run(2, 3, tmp_path, seed=7, kill_window=(0.4, 0.9)))
    assert report["integrity_failures"] == 0
    assert report["missing"] == []
    assert report["acknowledged"] > 0  # the kill really came while turns were acknowledged
    assert report["turns_in_db"] >= report["acknowledged"]


def test_a_line_is_stored_before_it_is_acknowledged(tmp_path: Path) -> None:
    """SIGKILL as soon as the acknowledgement arrives: the line and its memory are there."""
    db = tmp_path / "state.db"
    daemon = Daemon(
        state_dir=tmp_path,
        fakes=FakeEngines(voices=False),
        settings={"database_url": f"sqlite:///{db}"},
    )
    acked = []
    for _ in range(4):
        daemon.start()
        with connect(daemon.ws) as ws:
            session_id = receive(ws)["session"]["id"]
            send(ws, {"type": "session.update", "session": {"characters": ["bram"]}})
            for _ in range(5):
                token = secrets.token_hex(6)
                send(ws, say(f"probe {token} I love this, thank you so much, wonderful!"))
                until(ws, "conversation.item.created")
                acked.append((session_id, token, "line"))
            daemon.kill()
    integrity, missing, _, _ = verify(db, acked)
    assert integrity == "ok"
    assert missing == []
