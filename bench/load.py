"""Load test: N concurrent WebSocket sessions on 127.0.0.1 running turns for a fixed time.

By default it starts a daemon process on fake engines (`personae.daemon.testing`: the
protocol, the orchestration, the outbox pacing and the SQLite store under load, no
models; the LLM echoes each line's probe token) and runs
`--sessions` clients, each saying typed lines with a unique probe token and asking for
a spoken reply, one turn after another, for `--duration` seconds. It reports the
success rate, p50/p95/p99 latency (request → first audio chunk, request → response.done),
errors, and checks that no response was lost or duplicated: every response.created
gets exactly one response.done, every reply carries its own probe token, and the
store holds exactly one player line and one reply per completed turn.

    personae bench load [--sessions 50] [--duration 30] [--url ws://...] [--out bench/results/load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import websockets

from personae.daemon.testing.launcher import Daemon, FakeEngines


def load(frame: str | bytes) -> dict:
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)


@dataclass
class SessionStats:
    session_id: str = ""
    turns: int = 0
    completed: int = 0
    first_audio_ms: list[float] = field(default_factory=list)
    first_text_ms: list[float] = field(default_factory=list)
    done_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    wrong_reply: int = 0
    stray_events: int = 0
    completed_tokens: list[str] = field(default_factory=list)


async def client(url: str, deadline: float, stats: SessionStats, turn_timeout: float) -> None:
    try:
        async with websockets.connect(url, max_size=None, close_timeout=2) as ws:
            stats.session_id = load(await ws.recv())["session"]["id"]
            while time.monotonic() < deadline:
                token = secrets.token_hex(6)
                stats.turns += 1
                await ws.send(
                    msgpack.packb(
                        {
                            "type": "conversation.item.create",
                            "item": {
                                "content": [{"type": "input_text", "text": f"Bram, probe {token}?"}]
                            },
                        }
                    )
                )
                sent = time.monotonic()
                await ws.send(
                    msgpack.packb({"type": "response.create", "response": {"character": "bram"}})
                )
                rid = None
                first_audio = first_text = None
                retry_after_s = 0.0
                while True:
                    try:
                        event = load(await asyncio.wait_for(ws.recv(), turn_timeout))
                    except TimeoutError:
                        stats.lost += 1
                        return
                    kind = event["type"]
                    if kind == "error":
                        stats.errors[event["error"]["code"]] += 1
                        retry_after_s = (event["error"].get("retry_after_ms") or 0) / 1000
                        continue
                    if kind == "response.created":
                        if rid is not None:
                            stats.duplicated += 1
                        rid = event["response"]["id"]
                        continue
                    response_id = event.get("response_id") or (
                        event.get("response", {}).get("id") if kind == "response.done" else None
                    )
                    if response_id is not None and response_id != rid:
                        stats.stray_events += 1
                        continue
                    if kind == "response.output_audio.delta" and first_audio is None:
                        first_audio = time.monotonic()
                    if kind == "response.output_text.delta" and first_text is None:
                        first_text = time.monotonic()
                    if kind == "response.done":
                        now = time.monotonic()
                        response = event["response"]
                        if response["status"] == "completed":
                            stats.completed += 1
                            stats.completed_tokens.append(token)
                            stats.done_ms.append((now - sent) * 1000)
                            if first_audio is not None:
                                stats.first_audio_ms.append((first_audio - sent) * 1000)
                            if first_text is not None:
                                stats.first_text_ms.append((first_text - sent) * 1000)
                            if token not in response["output_text"]:
                                stats.wrong_reply += 1
                        else:
                            stats.errors[f"status_{response['status_reason']}"] += 1
                            # the reason follows response.done; a polite client waits
                            # as long as a `server_busy` asks before its next turn
                            with contextlib.suppress(TimeoutError):
                                reason = load(await asyncio.wait_for(ws.recv(), turn_timeout))
                                if reason["type"] == "error":
                                    stats.errors[reason["error"]["code"]] += 1
                                    hint = reason["error"].get("retry_after_ms") or 0
                                    retry_after_s = hint / 1000
                            await asyncio.sleep(min(retry_after_s, 10.0))
                        break
            # nothing may follow the last response.done
            with contextlib.suppress(TimeoutError):
                while True:
                    event = load(await asyncio.wait_for(ws.recv(), 0.3))
                    if event["type"].startswith("response."):
                        stats.stray_events += 1
    except (OSError, websockets.ConnectionClosed) as exc:
        stats.errors[f"connection_{type(exc).__name__}"] += 1


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def check_store(db: Path, stats: list[SessionStats]) -> dict:
    """One player line and one reply per completed turn, none for anything else."""
    con = sqlite3.connect(db)
    try:
        problems = 0
        for s in stats:
            rows = con.execute(
                "SELECT role, text FROM turns WHERE session_id = ? AND character_id = 'bram'",
                (s.session_id,),
            ).fetchall()
            for token in s.completed_tokens:
                said = sum(1 for role, text in rows if role == "player" and token in text)
                replied = sum(1 for role, text in rows if role == "character" and token in text)
                problems += (said != 1) + (replied != 1)
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        return {"store_mismatches": problems, "integrity": integrity}
    finally:
        con.close()


async def run(url: str, sessions: int, duration: float, turn_timeout: float) -> list[SessionStats]:
    deadline = time.monotonic() + duration
    stats = [SessionStats() for _ in range(sessions)]
    await asyncio.gather(*(client(url, deadline, s, turn_timeout) for s in stats))
    return stats


def summarise(stats: list[SessionStats], duration: float) -> dict:
    first = [v for s in stats for v in s.first_audio_ms]
    text = [v for s in stats for v in s.first_text_ms]
    done = [v for s in stats for v in s.done_ms]
    turns = sum(s.turns for s in stats)
    completed = sum(s.completed for s in stats)
    errors: Counter = Counter()
    for s in stats:
        errors.update(s.errors)
    return {
        "sessions": len(stats),
        "sessions_connected": sum(bool(s.session_id) for s in stats),
        "duration_s": duration,
        "turns": turns,
        "completed": completed,
        "success_rate": round(completed / turns, 5) if turns else 0.0,
        # refused up front (admission control), with a retry hint: not a failure
        "refused_busy": errors["server_busy"],
        "failed": turns - completed - errors["server_busy"],
        "turns_per_s": round(completed / duration, 2),
        "first_text_ms": {
            "p50": round(statistics.median(text), 1) if text else None,
            "p95": round(pct(text, 95), 1),
        },
        "first_audio_ms": {
            "p50": round(statistics.median(first), 1) if first else None,
            "p95": round(pct(first, 95), 1),
            "p99": round(pct(first, 99), 1),
        },
        "done_ms": {
            "p50": round(statistics.median(done), 1) if done else None,
            "p95": round(pct(done, 95), 1),
            "p99": round(pct(done, 99), 1),
        },
        "errors": dict(errors),
        "lost": sum(s.lost for s in stats),
        "duplicated": sum(s.duplicated for s in stats),
        "wrong_reply": sum(s.wrong_reply for s in stats),
        "stray_events": sum(s.stray_events for s in stats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--url", default=None, help="an already running daemon (no store check)")
    ap.add_argument("--token-delay-s", type=float, default=0.01)
    ap.add_argument("--audio-lead-ms", type=int, default=1000)
    ap.add_argument("--turn-timeout", type=float, default=30.0)
    ap.add_argument(
        "--llm-parallel", type=int, default=0, help="replies the fake LLM serves at once (0: any)"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "load.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="personae-load-") as tmp:
        db = Path(tmp) / "state.db"
        with contextlib.ExitStack() as stack:
            url = args.url
            if url is None:
                daemon = Daemon(
                    state_dir=Path(tmp),
                    fakes=FakeEngines(
                        token_delay_s=args.token_delay_s, llm_parallel=args.llm_parallel
                    ),
                    settings={
                        "database_url": f"sqlite:///{db}",
                        "cache_dir": Path(tmp) / "cache",
                        "audio_lead_ms": args.audio_lead_ms,
                        "max_sessions_per_key": 256,
                        "rate_per_s": 1000.0,
                        "rate_burst": 1000,
                    },
                )
                url = stack.enter_context(daemon).ws
            stats = asyncio.run(run(url, args.sessions, args.duration, args.turn_timeout))
        report = summarise(stats, args.duration)
        if args.url is None:
            report.update(check_store(db, stats))
    report["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    report["daemon"] = "fake engines" if args.url is None else args.url
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    ok = (
        report["failed"] == 0  # every turn completed or was refused up front
        and not report["lost"]
        and not report["duplicated"]
        and not report["wrong_reply"]
        and not report["stray_events"]
        and not report.get("store_mismatches")
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
