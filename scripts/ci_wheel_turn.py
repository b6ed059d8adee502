"""Wait for a daemon, say one line with the SDK, check a character answers in text and audio.

    WHEEL_VENV/bin/python scripts/ci_wheel_turn.py PORT SERVER_PID

Run by scripts/ci-wheel.sh with the Python of the environment the wheel went into: it
checks that personae is imported from there, not from a checkout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import personae.daemon
import personae.sdk
from personae.sdk.client import Reply, connect

READY_WITHIN_S = 600  # model loading and warm-up on two busy cores


def wait_until_ready(port: int, server: int) -> None:
    health = None
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        os.kill(server, 0)  # raises once `personae serve` has died
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                health = json.load(r)
            if health["status"] == "ok":
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the daemon is not ready: {health}")


async def turn(port: int) -> Reply:
    async with await connect(f"ws://127.0.0.1:{port}/v1/realtime") as session:
        return await session.say("Hello! Who are you, and what do you do here?")


def main() -> None:
    port, server = int(sys.argv[1]), int(sys.argv[2])
    for package in (personae.sdk, personae.daemon):
        where = Path(package.__path__[0])
        assert where.is_relative_to(sys.prefix), f"{package.__name__} imported from {where}"
    wait_until_ready(port, server)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/characters", timeout=5) as r:
        cast = {c["id"] for c in json.load(r)["characters"]}

    reply = asyncio.run(turn(port))
    assert reply.status == "completed", (reply.status, reply.response.status_reason)
    assert reply.character in cast, (reply.character, cast)
    assert reply.text.strip(), "the reply has no text"
    seconds = len(reply.audio) / 2 / reply.sample_rate
    assert seconds > 0.2, f"the reply has {seconds:.2f} s of audio"
    print(
        f"ci-wheel: {reply.character} of {sorted(cast)}: {reply.text!r}, {seconds:.1f} s of audio"
    )


if __name__ == "__main__":
    main()
