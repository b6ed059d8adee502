"""Crash test: SIGKILL the daemon again and again while it writes state and memory;
after every restart each write it acknowledged must be there and SQLite's
`PRAGMA integrity_check` must pass.

Each cycle starts a daemon process on fake engines (`launcher.Daemon`) on one SQLite
file, runs writer sessions that say "probe <token> ..." lines (the runtime logs the
player's line, remembers it and moves the character's feelings, then logs the reply)
and asks for a reply, and kills the daemon with SIGKILL at a random moment. The
player's `conversation.item.created` acknowledges the line and its memory (the daemon
sends it after writing them); a `response.done` (completed) acknowledges the reply's
line too. `bench/crash.py` runs it long; tests/reliability/test_crash.py twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import websockets

from personae.daemon.testing.launcher import Daemon, FakeEngines


@dataclass
class Cycle:
    #: player lines acknowledged (conversation.item.created)
    acknowledged: int = 0
    missing: list[str] = field(default_factory=list)
    integrity: str = ""
    killed_after_s: float = 0.0
    turns_in_db: int = 0
    memories_in_db: int = 0


def load(frame: str | bytes) -> dict:
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)


async def writer(url: str, acked: list[tuple[str, str, str]], stop: asyncio.Event) -> None:
    """One session saying probe lines until the daemon dies; records acknowledged ones."""
    with contextlib.suppress(OSError, websockets.ConnectionClosed, asyncio.TimeoutError):
        async with websockets.connect(url, max_size=None, close_timeout=0.2) as ws:
            created = load(await ws.recv())
            session_id = created["session"]["id"]
            await ws.send(
                msgpack.packb(
                    {
                        "type": "session.update",
                        "session": {"output_modalities": ["text"], "characters": ["bram"]},
                    }
                )
            )
            while not stop.is_set():
                token = secrets.token_hex(6)
                line = f"probe {token} I love this, thank you so much, wonderful!"
                await ws.send(
                    msgpack.packb(
                        {
                            "type": "conversation.item.create",
                            "item": {"content": [{"type": "input_text", "text": line}]},
                        }
                    )
                )
                await ws.send(
                    msgpack.packb({"type": "response.create", "response": {"character": "bram"}})
                )
                while True:
                    event = load(await asyncio.wait_for(ws.recv(), 10))
                    if event["type"] == "error":
                        raise RuntimeError(f"daemon error: {event['error']}")
                    if event["type"] == "conversation.item.created":
                        item = event["item"]
                        if item["role"] == "user" and token in item["content"][0]["text"]:
                            acked.append((session_id, token, "line"))
                    if event["type"] == "response.done":
                        if event["response"]["status"] == "completed":
                            acked.append((session_id, token, "reply"))
                        break


def verify(db: Path, acked: list[tuple[str, str, str]]) -> tuple[str, list[str], int, int]:
    """Integrity and presence of every acknowledged write, read by plain sqlite3:
    `line` acknowledgements need the player's line and memory, `reply` ones the reply."""
    con = sqlite3.connect(db)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        missing: list[str] = []
        for session_id, token, what in acked:
            rows = con.execute(
                "SELECT role, text FROM turns WHERE session_id = ? ORDER BY id", (session_id,)
            ).fetchall()
            said = [i for i, (role, text) in enumerate(rows) if role == "player" and token in text]
            replied = [
                i for i, (role, text) in enumerate(rows) if role == "character" and token in text
            ]
            if not said:
                missing.append(f"{token}: player line")
            if what == "reply" and (not replied or (said and replied[0] < said[0])):
                missing.append(f"{token}: reply")
            if not con.execute(
                "SELECT 1 FROM memories WHERE text LIKE ?", (f"%probe {token}%",)
            ).fetchone():
                missing.append(f"{token}: memory")
            if what == "line" and (len(said) > 1 or len(replied) > 1):
                missing.append(f"{token}: duplicated")
        turns = con.execute("SELECT count(*) FROM turns").fetchone()[0]
        memories = con.execute("SELECT count(*) FROM memories").fetchone()[0]
        return integrity, missing, turns, memories
    finally:
        con.close()


async def one_cycle(
    workdir: Path,
    db: Path,
    *,
    writers: int,
    rng: random.Random,
    kill_window: tuple[float, float],
    real: bool = False,
) -> Cycle:
    # real: the embedded engines (llama.cpp for the LLM: it loads in about a second,
    # so twenty restarts stay short); the writes are the same
    engines = {"llm_engine": "llamacpp"} if real else {}
    daemon = Daemon(
        state_dir=workdir,
        fakes=None if real else FakeEngines(),
        settings={
            **engines,
            "database_url": f"sqlite:///{db}",
            "cache_dir": workdir / "cache",
            "audio_lead_ms": 0,
            "max_sessions_per_key": 256,
            "rate_per_s": 1000.0,
            "rate_burst": 1000,
        },
    )
    await asyncio.to_thread(daemon.start)
    acked: list[tuple[str, str, str]] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(writer(daemon.ws, acked, stop)) for _ in range(writers)]
    wait = rng.uniform(*kill_window)
    await asyncio.sleep(wait)
    await asyncio.to_thread(daemon.kill)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    integrity, missing, turns, memories = verify(db, acked)
    lines = sum(what == "line" for _, _, what in acked)
    return Cycle(lines, missing, integrity, round(wait, 3), turns, memories)


async def run(
    cycles: int,
    writers: int,
    workdir: Path,
    seed: int,
    kill_window=(0.5, 2.0),
    *,
    real: bool = False,
) -> dict:
    rng = random.Random(seed)
    db = workdir / "state.db"
    results = []
    for i in range(cycles):
        c = await one_cycle(
            workdir, db, writers=writers, rng=rng, kill_window=kill_window, real=real
        )
        results.append(c)
        print(
            f"cycle {i + 1:>3}: killed after {c.killed_after_s:.2f} s, {c.acknowledged:>4} "
            f"acknowledged, missing {len(c.missing)}, integrity {c.integrity}, "
            f"{c.turns_in_db} turns / {c.memories_in_db} memories in the database",
            file=sys.stderr,
        )
    return {
        "cycles": cycles,
        "writers": writers,
        "seed": seed,
        "engines": "embedded (llama.cpp)" if real else "fakes",
        "acknowledged": sum(c.acknowledged for c in results),
        "missing": [m for c in results for m in c.missing],
        "integrity_failures": sum(c.integrity != "ok" for c in results),
        "turns_in_db": results[-1].turns_in_db if results else 0,
        "memories_in_db": results[-1].memories_in_db if results else 0,
        "per_cycle": [c.__dict__ for c in results],
    }
