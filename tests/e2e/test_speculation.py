"""The speculative reply on the real embedded models, over a real socket: the reply
begun at the player's pause is the one the player hears when the turn ends there."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import pytest

from personae.daemon.testing.launcher import Daemon
from personae.sdk import connect
from tests.speech import speak_pcm16, words

pytestmark = pytest.mark.models


def counter(daemon: Daemon, outcome: str) -> float:
    body = urllib.request.urlopen(f"{daemon.url}/metrics", timeout=10).read().decode()
    found = re.findall(
        rf'personae_speculative_replies_total{{outcome="{outcome}",reason="[^"]*"}} ([0-9.]+)',
        body,
    )
    return sum(float(v) for v in found)


async def test_a_spoken_turn_ending_at_its_pause_keeps_the_speculative_reply(
    tmp_path,
) -> None:
    # a long silence rule, so the early transcript and the guess are in before the
    # turn ends even on a loaded machine (what it saves is measured in bench/)
    settings = {"speculative_reply": True, "vad_silence_ms": 1500, "audio_lead_ms": 300}
    with Daemon(state_dir=tmp_path, settings=settings) as daemon:
        question = speak_pcm16("Hey Mara, where can I find an old map of the river?", 16000)
        async with await connect(daemon.ws, framing="msgpack") as session:
            step = 3200  # 100 ms, sent in real time so the pause is heard as it comes
            for i in range(0, len(question), step):
                await session.append_audio(question[i : i + step])
                await asyncio.sleep(0.1)
            for _ in range(20):
                await session.append_audio(bytes(step))
                await asyncio.sleep(0.1)
            reply = await session.collect_reply(timeout=120)
        kept = counter(daemon, "kept")
        body = urllib.request.urlopen(f"{daemon.url}/metrics", timeout=10).read().decode()
        outcomes = [line for line in body.splitlines() if "speculat" in line and "#" not in line]
    assert reply.status == "completed" and reply.character == "mara"
    assert {"mara", "map", "river"} <= words(reply.transcript or "")
    assert reply.text and reply.audio
    assert kept == 1, f"the reply was the one begun at the pause: {outcomes}"
