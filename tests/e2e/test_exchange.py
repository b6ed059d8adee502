"""Characters talk to each other on the real embedded models, over a real socket: each
line with its own adapter and voice, in turn, and the player's voice stops them."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from personae.daemon import audio as pcm
from personae.daemon.characters import default_cast_dir, load_cast
from personae.sdk import connect
from personae.sdk import protocol as p
from tests.speech import median_f0, speak_pcm16

pytestmark = pytest.mark.models

TOPIC = "the strange lights seen on the old mill at night"


def shipped(cid: str) -> str:
    """The adapter the default cast serves for `cid` ("bram@v2")."""
    ref = load_cast([default_cast_dir()])[cid].adapter
    assert ref is not None
    return f"{ref.name}@{ref.version}"


def pitch(audio: bytes, rate: int) -> float:
    return median_f0(pcm.pcm16_to_float32(audio).astype(np.float64), rate)


async def test_two_characters_alternate_adapters_and_voices_over_four_lines(daemon) -> None:
    async with await connect(daemon.ws, framing="msgpack", characters=["bram", "mara"]) as s:
        exchange = await s.converse(["bram", "mara"], TOPIC, lines=4, timeout=600)
    assert exchange.reason == "finished", exchange.done
    assert exchange.done.lines_spoken == 4
    assert exchange.speakers == ["bram", "mara", "bram", "mara"]
    # each line was generated with its speaker's own adapter ...
    assert [line.adapter for line in exchange.lines] == [
        shipped(c) for c in ("bram", "mara", "bram", "mara")
    ]
    assert all(line.status == "completed" and line.text.strip() for line in exchange.lines)
    # ... streamed as its own response, every event and audio chunk naming the speaker
    for line, reply in zip(exchange.lines, exchange.replies, strict=True):
        assert reply.response.id == line.response_id and reply.character == line.character
        chunks = [e for e in reply.events if isinstance(e, p.OutputAudioDelta)]
        assert chunks and all(e.character == line.character for e in chunks)
        assert reply.text.strip() == line.text.strip()
    # one response after the other, in the order of the lines
    order = [e.response.id for e in exchange.events if isinstance(e, p.ResponseCreated)]
    assert order == [line.response_id for line in exchange.lines]
    # ... and in its speaker's voice: Mara's (pitch 1.22) is higher than Bram's (0.9);
    # emotion moves each a little (measured 110-119 Hz against 77-96 Hz)
    rate = exchange.replies[0].sample_rate
    voices = {
        who: pitch(b"".join(r.audio for r in exchange.replies if r.character == who), rate)
        for who in ("bram", "mara")
    }
    assert voices["mara"] > 1.1 * voices["bram"], voices


async def test_the_players_voice_ends_an_exchange_and_is_answered(daemon) -> None:
    question = speak_pcm16("Wait. Mara, where is the old mill?", 16000, pad_s=0.3)
    async with await connect(daemon.ws, framing="msgpack", characters=["bram", "mara"]) as s:
        await s.start_exchange(["bram", "mara"], TOPIC, lines=6)
        # talk over the first line while it is spoken
        first = await s.wait_for("response.output_audio.delta", timeout=300)
        assert first.character == "bram"
        # in real time, as a microphone sends it
        step = 2 * 1600
        for i in range(0, len(question), step):
            await s.append_audio(question[i : i + step])
            await asyncio.sleep(0.1)
        await s.append_audio(bytes(2 * 16000))  # a second of silence ends the turn
        events: list[p.ServerEvent] = []
        done = None
        async with asyncio.timeout(300):
            while True:
                event = await s.next_event()
                events.append(event)
                if isinstance(event, p.NpcExchangeDone):
                    done = event
                if (
                    done
                    and isinstance(event, p.ResponseDone)
                    and event.response.status == "completed"
                ):
                    answer = event.response
                    break
    assert done is not None and done.reason == "interrupted"
    assert done.lines_spoken <= 2
    first_done = next(e for e in events if isinstance(e, p.ResponseDone)).response
    assert first_done.character == "bram" and first_done.id == first.response_id
    # Bram's short first line may end before the barge-in: in a session's first second
    # of reply audio the echo check counts any delay as echo (docs/clients/echo.md)
    assert first_done.status in ("cancelled", "completed")
    # nothing of the exchange was generated after the barge-in
    created = [e.response for e in events if isinstance(e, p.ResponseCreated)]
    assert created[-1].id == answer.id and len(created) <= 2
    transcript = next(e for e in events if isinstance(e, p.TranscriptionCompleted)).transcript
    assert "mill" in transcript.lower()
    route = next(e for e in events if isinstance(e, p.NpcRoute))
    assert route.character == "mara" and answer.character == "mara" and answer.output_text


async def test_bad_exchanges_are_refused_precisely_over_the_socket(daemon) -> None:
    from personae.sdk.client import PersonaeError

    async with await connect(daemon.ws, framing="msgpack", characters=["bram", "mara"]) as s:
        codes = []
        for characters, lines in ((["bram"], 4), (["bram", "mara"], 100), (["bram", "wren"], 2)):
            with pytest.raises(PersonaeError) as refused:
                await s.converse(characters, TOPIC, lines=lines, timeout=30)
            codes.append(refused.value.error.code)
        reply = await s.say("Bram, are you still there?")  # the session goes on
    assert codes == [
        "exchange_too_few_characters",
        "exchange_lines_out_of_range",
        "character_not_present",
    ]
    assert reply.status == "completed" and reply.character == "bram"
