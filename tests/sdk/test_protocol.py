"""Every protocol event survives both framings unchanged; bad frames fail precisely."""

from __future__ import annotations

import base64
import json
from typing import get_args

import msgpack
import pytest
from pydantic import BaseModel

from personae.sdk import protocol as p
from personae.sdk.framing import FrameError, Framing, decode_client, decode_server, encode

PCM = bytes(range(256)) * 4

EXAMPLES: list[BaseModel] = [
    p.SessionUpdate(
        session=p.SessionConfig(characters=["bram"], turn_detection=None, output_sample_rate=48000)
    ),
    p.InputAudioBufferAppend(audio=PCM, event_id="e1"),
    p.InputAudioBufferCommit(),
    p.InputAudioBufferClear(),
    p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text="Hello, Mara.")])),
    p.ConversationItemTruncate(item_id="item_1", audio_end_ms=1200),
    p.ResponseCreate(response=p.ResponseOptions(character="wren", instructions="Be brief.")),
    p.ResponseCancel(response_id="resp_1"),
    p.GameEvent(
        name="bridge_collapsed",
        description="The old bridge fell.",
        characters=["bram"],
        data={"x": 1},
    ),
    p.SessionCreated(session=p.Session(id="sess_1")),
    p.SessionUpdated(session=p.Session(id="sess_1", pinned_character="mara")),
    p.SpeechStarted(audio_start_ms=10, item_id="i"),
    p.SpeechStopped(audio_end_ms=900, item_id="i"),
    p.InputAudioBufferCommitted(item_id="i"),
    p.InputAudioBufferCleared(),
    p.ConversationItemCreated(item=p.Item(id="i", content=[p.ContentPart(text="x")])),
    p.ConversationItemTruncated(item_id="i", audio_end_ms=5),
    p.TranscriptionDelta(item_id="i", delta="Hey"),
    p.TranscriptionCompleted(item_id="i", transcript="Hey Bram."),
    p.NpcRoute(
        item_id="i", character="bram", reason="addressed", scores={"bram": 0.61, "mara": 0.2}
    ),
    p.ResponseCreated(response=p.ResponseInfo(id="r", character="bram")),
    p.OutputTextDelta(response_id="r", item_id="i", character="bram", delta="Aye"),
    p.OutputTextDone(response_id="r", item_id="i", character="bram", text="Aye."),
    p.OutputAudioDelta(response_id="r", item_id="i", character="bram", delta=PCM, offset_ms=100),
    p.OutputAudioDone(response_id="r", item_id="i", character="bram"),
    p.NpcSentence(
        response_id="r",
        item_id="i",
        character="bram",
        text="Aye.",
        audio_start_ms=0,
        audio_duration_ms=400,
    ),
    p.NpcViseme(
        response_id="r",
        item_id="i",
        character="bram",
        visemes=[p.Viseme(viseme="aa", start_ms=0, duration_ms=120)],
        words=[p.WordTiming(text="Aye", start_ms=0, duration_ms=300)],
    ),
    p.ResponseDone(
        response=p.ResponseInfo(id="r", character="bram", status="cancelled", audio_sent_ms=300)
    ),
    p.Error(error=p.ErrorInfo(code="unknown_event", message="nope", event_type="x.y")),
    p.NpcFeedback(character="mara", score=0.5, response_id="r"),
    p.NpcEmotion(character="mara", dominant="joy", intensity=0.4, blend={"joy": 0.4}, trust=0.1),
    p.NpcAlert(character="wren", signal="consistency", rolling=0.12, threshold=0.2, replies=20),
    p.NpcAction(
        response_id="r",
        item_id="i",
        character="bram",
        kind="action",
        text="waves",
        audio_start_ms=0,
    ),
    p.NpcConverse(characters=["bram", "mara"], topic="the mill lights", lines=4),
    p.NpcExchangeStarted(
        exchange_id="x", characters=["bram", "mara"], topic="the mill lights", lines=4
    ),
    p.NpcExchangeLine(
        exchange_id="x",
        index=0,
        character="bram",
        response_id="r",
        status="completed",
        text="Lights.",
        adapter="bram@v1",
    ),
    p.NpcExchangeDone(exchange_id="x", reason="finished", lines_spoken=4, handoff="mara"),
    p.NpcAction(
        response_id="r",
        item_id="i",
        character="bram",
        kind="game",
        text="sell the player an item from the forge",
        name="sell",
        arguments={"item": "sword", "price": 30},
        action_id="act_1",
    ),
    p.GameTrigger(character="bram", trigger="customer_enters", parameters={"name": "Ayla"}),
    p.GameActionResult(action_id="act_1", status="refused", reason="no coin"),
]


def test_examples_cover_every_event_type() -> None:
    covered = {e.type for e in EXAMPLES}
    assert covered == p.CLIENT_EVENT_TYPES | p.SERVER_EVENT_TYPES


@pytest.mark.parametrize("framing", list(Framing))
@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_round_trip(event: BaseModel, framing: Framing) -> None:
    frame = encode(event, framing)
    assert isinstance(frame, str if framing is Framing.JSON else bytes)
    decode = decode_client if event.type in p.CLIENT_EVENT_TYPES else decode_server
    back, seen = decode(frame)
    assert seen is framing
    assert back == event


def test_audio_is_base64_in_json_and_raw_bytes_in_msgpack() -> None:
    event = p.InputAudioBufferAppend(audio=PCM)
    assert json.loads(encode(event, Framing.JSON))["audio"] == base64.b64encode(PCM).decode()
    assert msgpack.unpackb(encode(event, Framing.MSGPACK))["audio"] == PCM


def test_session_update_sends_only_the_fields_set() -> None:
    frame = json.loads(
        encode(p.SessionUpdate(session=p.SessionConfig(pinned_character="mara")), Framing.JSON)
    )
    assert frame["session"] == {"pinned_character": "mara"}
    back, _ = decode_client(json.dumps(frame))
    assert back.session.model_fields_set == {"pinned_character"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("nope", "malformed_frame"),
        (b"\x92\x01\x02", "malformed_frame"),
        ('"just a string"', "malformed_frame"),
        ('{"type": 3}', "missing_type"),
        ('{"type": "session.explode", "event_id": "e9"}', "unknown_event"),
        ('{"type": "input_audio_buffer.append", "audio": "not base64!"}', "invalid_event"),
        ('{"type": "conversation.item.truncate", "item_id": "i"}', "invalid_event"),
        ('{"type": "response.create", "surprise": 1}', "invalid_event"),
        ('{"type": "session.update", "session": {"characters": ["Not An Id"]}}', "invalid_event"),
    ],
)
def test_bad_client_frames(frame: str | bytes, code: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_client(frame)
    assert info.value.code == code and info.value.message


def test_unknown_event_keeps_type_and_id_for_the_error() -> None:
    with pytest.raises(FrameError) as info:
        decode_client('{"type": "session.explode", "event_id": "e9"}')
    assert (info.value.event_type, info.value.event_id) == ("session.explode", "e9")


def test_server_union_lists_every_server_model() -> None:
    names = {m.model_fields["type"].default for m in get_args(get_args(p.ServerEvent)[0])}
    assert names == p.SERVER_EVENT_TYPES and not names & p.CLIENT_EVENT_TYPES


def test_sdk_public_api_is_pinned() -> None:
    import personae.sdk as sdk

    assert sorted(sdk.__all__) == [
        "DEFAULT_URL",
        "Framing",
        "PROTOCOL_VERSION",
        "PersonaeError",
        "Reply",
        "Session",
        "SyncClient",
        "connect",
    ]


def test_sdk_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, personae.sdk, personae.sdk.cli; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("framing", list(Framing))
def test_a_client_sends_only_what_it_set(framing):
    """A daemon older than the SDK never sees a field it does not know: what the
    client never set (the default) stays out of the frame, and it decodes the same."""
    event = p.ResponseCreate(response=p.ResponseOptions(character="bram"))
    frame = encode(event, framing, only_set=True)
    data = json.loads(frame) if framing is Framing.JSON else msgpack.unpackb(frame)
    assert data == {"type": "response.create", "response": {"character": "bram"}}
    decoded, _ = decode_client(frame)
    assert decoded == event
    audio = p.InputAudioBufferAppend(audio=b"\x01\x02\x03\x04")
    decoded, _ = decode_client(encode(audio, framing, only_set=True))
    assert decoded == audio
