"""The official `openai` SDK's realtime clients, GA and beta, against a live daemon.

The daemon runs on fake engines (VAD hears tones, STT hears "probe spoken", the LLM
answers "Heard <probe>. ..."), so these tests check the protocol an unchanged OpenAI
client sees: the session shapes, the event set and its order, usage, `model=` pins.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

openai = pytest.importorskip("openai")

from personae.daemon.testing.launcher import Daemon, FakeEngines  # noqa: E402


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    state = Path(tmp_path_factory.mktemp("openai-realtime"))
    # pieces of half a second: a long utterance is transcribed while it is spoken
    settings = {"audio_lead_ms": 0, "stt_piece_min_s": 0.5}
    with Daemon(state_dir=state, fakes=FakeEngines(), settings=settings) as d:
        yield d


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int) -> bytes:
    return bytes(2 * int(seconds * rate))


def ga(d: Daemon):
    return openai.AsyncOpenAI(api_key="unused", base_url=f"{d.url}/v1")


def beta(d: Daemon):
    return openai.AsyncOpenAI(
        api_key="unused", base_url=f"{d.url}/v1", websocket_base_url=f"ws://127.0.0.1:{d.port}/v1"
    )


async def until(conn, last: str, timeout: float = 20.0) -> list:
    """Events up to and including the first of type `last`."""
    seen = []
    async with asyncio.timeout(timeout):
        async for event in conn:
            seen.append(event)
            if event.type == last:
                return seen
    raise AssertionError(f"connection closed before {last}: {[e.type for e in seen]}")


def types(events: list) -> list[str]:
    return [e.type for e in events]


async def say(conn, rate: int, seconds: float = 0.6) -> None:
    pcm = silence(0.2, rate) + tone(seconds, rate) + silence(1.0, rate)
    step = rate // 10 * 2
    for i in range(0, len(pcm), step):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + step]).decode())


def test_ga_client_text_and_spoken_turns(daemon: Daemon) -> None:
    async def main() -> None:
        async with ga(daemon).realtime.connect(model="bram") as conn:
            created = await until(conn, "session.created")
            session = created[-1].session
            assert session.type == "realtime" and session.model == "bram"
            assert session.audio.input.format.rate == 24000  # OpenAI's default rate
            await conn.session.update(
                session={
                    "type": "realtime",
                    "instructions": "You are wary of strangers.",
                    "output_modalities": ["text"],
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                            "transcription": {"model": "whisper-1"},
                        },
                        "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                    },
                }
            )
            updated = (await until(conn, "session.updated"))[-1].session
            assert updated.instructions == "You are wary of strangers."
            assert updated.output_modalities == ["text"]
            assert updated.audio.input.turn_detection.silence_duration_ms == 300
            assert updated.audio.input.transcription.model == "whisper-1"

            # a text turn, addressed to Mara: model=bram pins Bram
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Mara, probe t1?"}],
                }
            )
            await conn.response.create(response={"conversation": "auto", "metadata": {"k": "v"}})
            events = await until(conn, "response.done")
            order = [
                t
                for t in types(events)
                if not t.startswith("npc.") and t != "conversation.item.created"
            ]
            assert order[:2] == ["conversation.item.added", "conversation.item.done"]
            deltas = [t for t in order if t == "response.output_text.delta"]
            assert deltas
            assert [t for t in order if t != "response.output_text.delta"][2:] == [
                "response.created",
                "response.output_item.added",
                "conversation.item.added",
                "response.content_part.added",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.done",
            ]
            done = events[-1].response
            assert done.status == "completed"
            assert done.to_dict()["character"] == "bram"
            assert done.metadata == {"k": "v"}
            assert done.output[0].content[0].text.startswith("Heard t1")
            assert done.usage.output_tokens > 0 and done.usage.input_tokens > 0
            assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens

            # a spoken turn at OpenAI's 24 kHz, answered with audio and its transcript
            await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
            await until(conn, "session.updated")
            await say(conn, 24000)
            events = await until(conn, "response.done")
            seen = types(events)
            for t in (
                "input_audio_buffer.speech_started",
                "input_audio_buffer.committed",
                "conversation.item.input_audio_transcription.completed",
                "response.output_audio_transcript.delta",
                "response.output_audio.delta",
                "response.output_audio.done",
                "response.output_audio_transcript.done",
            ):
                assert t in seen, (t, seen)
            assert seen.index("input_audio_buffer.committed") < seen.index(
                "conversation.item.added"
            )
            assert "response.output_text.delta" not in seen
            transcript = next(
                e
                for e in events
                if e.type == "conversation.item.input_audio_transcription.completed"
            )
            assert transcript.transcript == "probe spoken"
            audio = b"".join(
                base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta"
            )
            assert len(audio) > 24000  # over half a second of 24 kHz PCM16
            done = events[-1].response
            assert done.output[0].content[0].transcript.startswith("Heard spoken")
            assert done.usage.output_tokens > 0

    asyncio.run(main())


def test_beta_client_gets_beta_names(daemon: Daemon) -> None:
    async def main() -> None:
        async with beta(daemon).beta.realtime.connect(model="mara") as conn:
            await until(conn, "session.created")
            await conn.session.update(
                session={
                    "modalities": ["text", "audio"],
                    "voice": "bram",
                    "input_audio_format": "pcm16",
                }
            )
            updated = (await until(conn, "session.updated"))[-1].session
            assert updated.modalities == ["text", "audio"] and updated.voice == "bram"
            assert updated.input_audio_format == "pcm16"
            await say(conn, 24000)
            events = await until(conn, "response.done")
            seen = types(events)
            assert "response.audio.delta" in seen and "response.audio_transcript.delta" in seen, (
                str(seen)
            )
            assert "response.output_audio.delta" not in seen
            assert events[-1].response.to_dict()["character"] == "mara"
            assert events[-1].response.usage.output_tokens > 0
            await conn.session.update(session={"modalities": ["text"]})
            await until(conn, "session.updated")
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "probe b2"}],
                }
            )
            await conn.response.create()
            events = await until(conn, "response.done")
            text = "".join(e.delta for e in events if e.type == "response.text.delta")
            assert text.startswith("Heard b2")

    asyncio.run(main())


def test_a_partial_transcript_comes_before_the_final_one(daemon: Daemon) -> None:
    async def main() -> None:
        async with ga(daemon).realtime.connect(model="bram") as conn:
            await until(conn, "session.created")
            rate = 24000
            # two phrases with a pause shorter than the turn's end (600 ms) between them
            pcm = tone(1.0, rate) + silence(0.4, rate) + tone(1.0, rate) + silence(1.2, rate)
            step = rate // 10 * 2
            for i in range(0, len(pcm), step):
                await conn.input_audio_buffer.append(
                    audio=base64.b64encode(pcm[i : i + step]).decode()
                )
            events = await until(conn, "conversation.item.input_audio_transcription.completed")
            deltas = [
                e for e in events if e.type == "conversation.item.input_audio_transcription.delta"
            ]
            final = events[-1]
            assert deltas and deltas[0].delta == "probe spoken"  # the first phrase
            assert final.transcript == "probe spoken probe spoken"
            assert "".join(d.delta for d in deltas) == final.transcript
            assert {d.item_id for d in deltas} == {final.item_id}

    asyncio.run(main())


def test_strict_clients_can_turn_npc_events_off(daemon: Daemon) -> None:
    async def main() -> None:
        async with ga(daemon).realtime.connect(model="personae") as conn:
            await until(conn, "session.created")
            await conn.send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "npc_events": False,
                        "output_modalities": ["text"],
                    },
                }
            )  # type: ignore[arg-type]
            await until(conn, "session.updated")
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "probe s1"}],
                }
            )
            await conn.response.create()
            events = await until(conn, "response.done")
            assert not [t for t in types(events) if t.startswith("npc.")]

    asyncio.run(main())


def test_unknown_model_is_refused_before_the_session(daemon: Daemon) -> None:
    async def main() -> None:
        async with ga(daemon).realtime.connect(model="gpt-nobody") as conn:
            raw = json.loads(await conn.recv_bytes())
            assert raw["type"] == "error"
            assert raw["error"]["code"] == "model_not_found"
            assert "gpt-nobody" in raw["error"]["message"] and "bram" in raw["error"]["message"]

    asyncio.run(main())


def test_bad_openai_fields_get_precise_errors_and_the_session_goes_on(daemon: Daemon) -> None:
    async def main() -> None:
        async with ga(daemon).realtime.connect(model="bram") as conn:
            await until(conn, "session.created")
            for session, names in (
                ({"type": "realtime", "instructions": 5}, "session.instructions"),
                (
                    {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
                    "audio/pcmu",
                ),
            ):
                await conn.send({"type": "session.update", "session": session})  # type: ignore[arg-type]
                error = (await until(conn, "error"))[-1].error
                assert error.code == "invalid_event" and names in error.message
            await conn.session.update(
                session={"type": "realtime", "tools": [{"type": "function", "name": "f"}]}
            )
            events = await until(conn, "npc.warning")
            assert events[-1].to_dict()["param"] == "session.tools"
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "probe ok"}],
                }
            )
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1].response.status == "completed"

    asyncio.run(main())


@pytest.mark.models
def test_ga_client_with_the_real_engines(tmp_path: Path) -> None:
    """The embedded engines: SmolLM2's tokenizer counts the usage, Piper speaks."""

    async def main() -> None:
        with Daemon(state_dir=tmp_path, settings={"audio_lead_ms": 0}) as d:
            async with ga(d).realtime.connect(model="bram") as conn:
                await until(conn, "session.created")
                await conn.conversation.item.create(
                    item={
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "What do you forge?"}],
                    }
                )
                await conn.response.create(response={"output_modalities": ["audio"]})
                events = await until(conn, "response.done", timeout=240)
                done = events[-1].response
                assert done.status == "completed"
                assert done.to_dict()["character"] == "bram"
                transcript = "".join(
                    e.delta for e in events if e.type == "response.output_audio_transcript.delta"
                )
                assert transcript.strip() == done.output[0].content[0].transcript
                assert any(e.type == "response.output_audio.delta" for e in events)
                assert done.usage.input_tokens > 20 and done.usage.output_tokens > 0

    asyncio.run(main())
