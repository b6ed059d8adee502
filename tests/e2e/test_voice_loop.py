"""The whole voice loop on the real embedded models, over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import urllib.request

import msgpack
import numpy as np
import pytest
import websockets

from personae.daemon import audio as pcm
from personae.sdk import connect
from tests.speech import speak_pcm16, words

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def whisper(settings):
    from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT

    return FasterWhisperSTT.from_settings(settings)


def heard_back(whisper, audio: bytes, rate: int) -> str:
    """Transcribe reply audio with whisper: proof that it is speech, not noise."""
    x = pcm.resample(pcm.pcm16_to_float32(audio), rate, 16000)
    return whisper.transcribe(x).text


def assert_says(whisper, audio: bytes, rate: int, text: str) -> None:
    """The reply's audio is speech, and says what was written: whisper hears some of its
    words. A reply of a word or two ("Ew." once came back as "You.") is too short for
    whisper to spell reliably; for those, speech of about that length must be heard."""
    back = heard_back(whisper, audio, rate)
    assert words(back), f"reply audio did not transcribe as speech: {back!r}"
    if len(words(text)) >= 3:
        assert words(back) & words(text), f"reply audio {back!r} does not say {text!r}"
    else:
        seconds = len(audio) / 2 / rate
        assert 0.15 <= seconds <= 1.5 + 0.8 * len(text.split()), (seconds, text)


async def test_spoken_question_over_sdk_is_heard_routed_answered_and_spoken(
    daemon, whisper
) -> None:
    question = speak_pcm16("Hey Mara, where can I find an old map of the river?", 16000)
    async with await connect(daemon.ws, framing="msgpack") as session:
        reply = await session.speak(question)
    assert reply.transcript is not None
    assert {"mara", "map", "river"} <= words(reply.transcript), reply.transcript
    assert reply.route is not None and reply.route.character == "mara"
    assert reply.route.reason == "addressed" and set(reply.route.scores) == {"bram", "mara", "wren"}
    assert reply.status == "completed" and reply.character == "mara"
    assert reply.text
    deltas = [e for e in reply.events if e.type == "response.output_audio.delta"]
    assert len(deltas) >= 2 and all(e.character == "mara" for e in deltas)
    assert reply.response.audio_sent_ms == pytest.approx(
        len(reply.audio) / 2 / reply.sample_rate * 1000, abs=5
    )
    assert_says(whisper, reply.audio, reply.sample_rate, reply.text)


async def test_raw_json_frames_text_turn_with_other_output_rate(daemon, whisper) -> None:
    async with websockets.connect(daemon.ws, max_size=None) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created" and created["session"]["protocol_version"] == 1
        await ws.send(
            json.dumps({"type": "session.update", "session": {"output_sample_rate": 16000}})
        )
        await ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "Bram, can you mend a bent sword?"}
                        ],
                    },
                }
            )
        )
        await ws.send(json.dumps({"type": "response.create"}))
        events = []
        while True:
            frame = await asyncio.wait_for(ws.recv(), 120)
            assert isinstance(frame, str), "a JSON client must get JSON frames back"
            event = json.loads(frame)
            events.append(event)
            if event["type"] == "response.done":
                break
    types = [e["type"] for e in events]
    assert "session.updated" in types and "npc.route" in types
    route = next(e for e in events if e["type"] == "npc.route")
    assert route["character"] == "bram"
    audio = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["character"] == "bram"
    assert done["output_text"] == text.strip() and done["output_sample_rate"] == 16000
    assert_says(whisper, audio, 16000, text)  # Bram is blunt: the reply may be "No."


async def test_barge_in_cancels_the_reply_and_no_more_of_its_audio_arrives(daemon) -> None:
    async with await connect(daemon.ws) as session:
        await session.add_text(
            "Wren, tell me everything you know about the rooftops, the market and the mill."
        )
        await session.respond()
        first = await session.wait_for("response.output_audio.delta", timeout=120)
        rid = first.response_id
        # the player talks over the character
        await session.append_audio(speak_pcm16("Wait, wait. Stop there.", 16000))
        events = []
        while True:
            e = await session.next_event(timeout=60)
            events.append(e)
            if e.type == "response.done" and e.response.id == rid:
                break
        done = events[-1]
        # then the new turn proceeds; collect until its reply ends
        await session.append_audio(bytes(2 * 16000))
        rest = []
        while True:
            e = await session.next_event(timeout=120)
            rest.append(e)
            if e.type == "response.done":
                break
    assert done.response.status == "cancelled" and done.response.status_reason == "turn_detected"
    assert any(e.type == "input_audio_buffer.speech_started" for e in events)
    assert not [e for e in rest if getattr(e, "response_id", None) == rid]
    sent = len(first.delta) + sum(
        len(e.delta) for e in events if e.type == "response.output_audio.delta"
    )
    assert done.response.audio_sent_ms == pytest.approx(sent / 2 / 24000 * 1000, abs=5)
    transcript = next(
        e for e in rest if e.type == "conversation.item.input_audio_transcription.completed"
    )
    assert "stop" in words(transcript.transcript)
    assert rest[-1].response.status == "completed"


BAD_FRAMES = [
    (b"\xc1\x00\x01", "malformed_frame"),
    ("{oops", "malformed_frame"),
    ('{"type": "npc.teleport"}', "unknown_event"),
    ('{"type": "response.create", "response": {"character": ["x"]}}', "invalid_event"),
    (
        msgpack.packb({"type": "input_audio_buffer.append", "audio": b"\x01\x02\x03"}),
        "invalid_audio",
    ),
    ('{"type": "response.create", "response": {"character": "gandalf"}}', "unknown_character"),
]


async def test_bad_input_errors_while_another_session_is_unaffected(daemon) -> None:
    async with await connect(daemon.ws, framing="json") as other:
        await other.add_text("Mara, hello!")
        await other.respond()
        async with websockets.connect(daemon.ws, max_size=None) as ws:
            await ws.recv()  # session.created
            for frame, code in BAD_FRAMES:
                await ws.send(frame)
                raw = await asyncio.wait_for(ws.recv(), 30)
                event = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
                assert event["type"] == "error", event
                assert event["error"]["code"] == code, event
                assert event["error"]["message"]
            # still usable after all of that
            await ws.send(
                json.dumps({"type": "response.create", "response": {"character": "bram"}})
            )
            while (event := json.loads(await asyncio.wait_for(ws.recv(), 120)))[
                "type"
            ] != "response.done":
                pass
            assert event["response"]["status"] == "completed"
            # a frame over the limit closes the connection with 1009
            await ws.send(b"\x00" * (2 << 20))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        reply = await other.collect_reply()
    assert reply.status == "completed" and reply.character == "mara"


async def test_disconnect_mid_reply_leaves_the_daemon_serving(daemon) -> None:
    ws = await websockets.connect(daemon.ws)
    await ws.recv()
    await ws.send(json.dumps({"type": "response.create", "response": {"character": "wren"}}))
    while json.loads(await ws.recv())["type"] != "response.output_text.delta":
        pass
    await ws.close()
    async with await connect(daemon.ws) as session:
        reply = await session.say("Bram, are you open today?")
    assert reply.status == "completed" and reply.character == "bram"
    # the server finishes a session after the client's close handshake: it cancels the
    # reply, writes what was heard and ends a prefill under way, so the count drops soon
    # after, not at once
    health = await healthz_until(daemon, lambda h: h["sessions"] == 0, within_s=10)
    assert health["status"] == "ok" and health["sessions"] == 0


async def healthz_until(daemon, done, *, within_s: float) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        with urllib.request.urlopen(f"{daemon.http}/healthz") as resp:
            health = json.load(resp)
        if done(health) or loop.time() > deadline:
            return health
        await asyncio.sleep(0.05)


def test_characters_endpoint_lists_the_default_cast(daemon) -> None:
    with urllib.request.urlopen(f"{daemon.http}/v1/characters") as resp:
        cast = {c["id"]: c for c in json.load(resp)["characters"]}
    assert set(cast) == {"bram", "mara", "wren"}
    voices = {
        (c["voice"]["engine"], c["voice"]["voice"], c["voice"]["pitch"]) for c in cast.values()
    }
    assert len(voices) == 3, "the default cast must sound distinct"


def test_sync_client(daemon) -> None:
    from personae.sdk import SyncClient

    with SyncClient(daemon.ws, characters=["bram", "wren"]) as npc:
        reply = npc.say("Wren, any news from the market?")
    assert reply.character == "wren" and reply.status == "completed" and reply.audio
    assert np.frombuffer(reply.audio, "<i2").std() > 100  # not silence


async def test_the_test_daemon_keeps_its_state_in_its_own_folder(daemon) -> None:
    async with await connect(daemon.ws) as session:
        reply = await session.say("Bram, remember me: I am the one with the bent sword!")
    assert reply.status == "completed"
    db = daemon.state_dir / "personae.db"
    # the conversation went into the daemon's own database, not the user's
    with sqlite3.connect(db) as conn:
        said = [row[0] for row in conn.execute("SELECT text FROM turns WHERE role = 'player'")]
    assert "Bram, remember me: I am the one with the bent sword!" in said
