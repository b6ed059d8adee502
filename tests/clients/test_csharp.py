"""The Unity package's engine-agnostic C# core, compiled with Mono and run outside Unity.

The same sources Unity compiles (clients/unity/Runtime/Core) build a library with
`mcs`, with no Unity assemblies referenced; a console harness (tests/clients/csharp)
built on it speaks to a scripted server and to a real daemon. Each test fails when the
C# client and sdk/protocol.py disagree.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.server import ServerConnection, serve

from personae.sdk import protocol as p
from personae.sdk.framing import Framing, decode_client, encode
from tests.clients.tools import ROOT, require_binary, sample_server_events, write_wav

CORE = ROOT / "clients/unity/Runtime/Core"
HARNESS = ROOT / "tests/clients/csharp/Conversation.cs"
#: an event type from a "newer daemon" (the harness expects this very name)
UNKNOWN_EVENT = "npc.gaze"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Compiles the core (warnings are errors) and the harness; returns the command prefix."""
    mcs = require_binary("mcs", "mono-mcs")
    mono = require_binary("mono", "mono-runtime")
    out = tmp_path_factory.mktemp("csharp")
    sources = sorted(str(f) for f in CORE.glob("*.cs"))
    assert sources, f"no C# sources in {CORE}"
    core = out / "Personae.Core.dll"
    build = subprocess.run(
        [mcs, "-target:library", "-warnaserror+", f"-out:{core}", *sources],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"core does not compile:\n{build.stdout}{build.stderr}"
    exe = out / "conversation.exe"
    build = subprocess.run(
        [mcs, "-warnaserror+", f"-r:{core}", "-r:System.Core.dll", f"-out:{exe}", str(HARNESS)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"harness does not compile:\n{build.stdout}{build.stderr}"
    return [mono, "--debug", str(exe)]


def run(harness: list[str], *args: str, timeout: float = 60) -> list[dict]:
    """Runs the harness; returns its JSON lines, failing with its reason when it fails."""
    proc = subprocess.run(
        [*harness, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"harness {args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return lines


def test_core_sources_do_not_touch_unity() -> None:
    offenders = [
        f.name
        for f in CORE.glob("*.cs")
        if "UnityEngine" in f.read_text() or "UnityEditor" in f.read_text()
    ]
    assert offenders == []
    asmdef = json.loads((CORE / "Personae.Core.asmdef").read_text())
    assert asmdef["noEngineReferences"] is True


def test_event_names_match_the_protocol(harness: list[str]) -> None:
    (described,) = run(harness, "describe")
    assert set(described["server"]) == set(p.SERVER_EVENT_TYPES), (
        "server events: C# vs sdk/protocol.py"
    )
    assert set(described["client"]) == set(p.CLIENT_EVENT_TYPES), (
        "client events: C# vs sdk/protocol.py"
    )
    assert described["protocol_version"] == p.PROTOCOL_VERSION
    assert described["subprotocol"] == p.SUBPROTOCOL


def test_decodes_every_field_of_every_server_event(harness: list[str], tmp_path: Path) -> None:
    """Each server event, every field set, in both framings: C# reads every field and misses none."""
    events = sample_server_events()
    assert {e.type for e in events} == set(p.SERVER_EVENT_TYPES)
    frames = bytearray()
    for framing in (Framing.MSGPACK, Framing.JSON):
        for event in events:
            data = encode(event, framing)
            raw = data if isinstance(data, bytes) else data.encode()
            frames += struct.pack("<BI", framing is Framing.MSGPACK, len(raw)) + raw
    (tmp_path / "frames.bin").write_bytes(bytes(frames))
    lines = run(harness, "audit", str(tmp_path / "frames.bin"))
    assert len(lines) == 2 * len(events)
    for line, event in zip(lines, events * 2, strict=True):
        where = f"{event.type} ({line['framing']})"
        assert line["type"] == event.type
        assert line["class"] != "UnknownEvent", f"C# does not decode {where}"
        assert line["unread"] == [], f"C# ignores fields of {where}: {line['unread']}"
        assert line["missing"] == [], f"C# reads fields {where} does not have: {line['missing']}"
        if isinstance(event, p.OutputAudioDelta):
            assert line["audio_bytes"] == len(event.delta)
        if isinstance(event, p._ResponsePart | p.NpcRoute):
            assert line["character"] == event.character


def test_every_client_event_passes_the_daemons_decoder(harness: list[str], tmp_path: Path) -> None:
    out = tmp_path / "client.bin"
    run(harness, "client-samples", str(out))
    data, seen = out.read_bytes(), []
    while data:
        binary, length = struct.unpack_from("<BI", data)
        frame, data = data[5 : 5 + length], data[5 + length :]
        event, framing = decode_client(
            frame if binary else frame.decode()
        )  # raises on any mismatch
        assert framing is (Framing.MSGPACK if binary else Framing.JSON)
        seen.append(event)
    assert {e.type for e in seen} == set(p.CLIENT_EVENT_TYPES)
    update, ptt = (e for e in seen[: len(seen) // 2] if isinstance(e, p.SessionUpdate))
    assert update.session.characters == ["bram", "mara"]
    assert update.session.turn_detection is not None
    assert update.session.turn_detection.interrupt_response is False
    assert ptt.session.model_fields_set == {"turn_detection"}, "a partial update must stay partial"
    assert ptt.session.turn_detection is None  # push-to-talk
    audio = next(e for e in seen if isinstance(e, p.InputAudioBufferAppend))
    assert audio.audio == b"\x01\x00\xff\x7f"
    game = next(e for e in seen if isinstance(e, p.GameEvent))
    assert game.data == {"loudness": 0.8, "by": "wind"}
    feedback = next(e for e in seen if isinstance(e, p.NpcFeedback))
    assert (feedback.character, feedback.score, feedback.response_id) == ("bram", 0.75, "resp_1")
    converse = next(e for e in seen if isinstance(e, p.NpcConverse))
    assert (converse.characters, converse.topic, converse.lines) == (
        ["bram", "mara"],
        "the lights on the mill",
        4,
    )


class ScriptedDaemon:
    """A fake daemon on 127.0.0.1 that misbehaves on purpose: the first connection gets an
    event type from a newer protocol, a broken frame and half a reply, then is dropped
    without a close frame; the second answers one line and sends an error event."""

    def __init__(self) -> None:
        self.updates: list[p.SessionConfig] = []
        self.received: list[str] = []
        self.connections = 0
        self.failure: BaseException | None = None

    def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            ws.send(
                encode(
                    p.SessionCreated(session=p.Session(id=f"sess_{self.connections}")), Framing.JSON
                )
            )
            update, framing = decode_client(ws.recv(timeout=5))
            assert framing is Framing.MSGPACK and isinstance(update, p.SessionUpdate)
            self.updates.append(update.session)
            if self.connections == 1:
                self._first(ws)
            else:
                self._second(ws)
        except BaseException as exc:  # surfaced by the test, never swallowed
            self.failure = exc

    def _part(self, **extra):
        return {"response_id": "resp_1", "item_id": "item_1", "character": "bram", **extra}

    def _first(self, ws: ServerConnection) -> None:
        import msgpack

        assert UNKNOWN_EVENT not in p.SERVER_EVENT_TYPES, "pick another event type no daemon sends"
        ws.send(msgpack.packb({"type": UNKNOWN_EVENT, "character": "bram", "at": "player"}))
        ws.send(b"\xc1")  # never valid msgpack
        info = p.ResponseInfo(id="resp_1", character="bram")
        ws.send(encode(p.ResponseCreated(response=info), Framing.MSGPACK))
        ws.send(encode(p.OutputTextDelta(**self._part(delta="Hel")), Framing.MSGPACK))
        ws.socket.shutdown(socket.SHUT_RDWR)  # the daemon dies mid-reply: no close frame

    def _second(self, ws: ServerConnection) -> None:
        for _ in range(2):
            event, _ = decode_client(ws.recv(timeout=5))
            self.received.append(event.type)
        route = p.NpcRoute(
            item_id="item_2",
            character="bram",
            reason="requested",
            scores={"bram": 1.0, "mara": 0.1},
        )
        info = p.ResponseInfo(id="resp_2", character="bram")
        done = info.model_copy(update={"status": "completed", "output_text": "Still here."})
        part = self._part(response_id="resp_2")
        for event in (
            route,
            p.ResponseCreated(response=info),
            p.OutputTextDelta(**part, delta="Still here."),
            p.NpcAction(**part, kind="emotion", text="warm", audio_start_ms=120),
            p.NpcEmotion(
                character="bram", dominant="joy", intensity=0.6, blend={"joy": 0.6}, trust=0.25
            ),
            p.ResponseDone(response=done),
            p.NpcAlert(
                character="bram", signal="consistency", rolling=0.4, threshold=0.5, replies=8
            ),
            p.Error(error=p.ErrorInfo(code="unknown_character", message="no character 'zed'")),
        ):
            ws.send(encode(event, Framing.MSGPACK))
        for _ in ws:  # until the client closes
            pass


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedDaemon, str]]:
    daemon = ScriptedDaemon()
    with serve(daemon.handle, "127.0.0.1", 0, subprotocols=[p.SUBPROTOCOL]) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        yield daemon, f"ws://127.0.0.1:{port}/v1/realtime"
        server.shutdown()
        thread.join(5)


def test_recovers_from_unknown_events_bad_frames_and_a_drop_mid_reply(
    harness: list[str], scripted: tuple[ScriptedDaemon, str]
) -> None:
    daemon, url = scripted
    lines = run(harness, "recover", url)
    result = lines[-1]
    assert daemon.failure is None, f"scripted daemon saw a bad client: {daemon.failure!r}"
    assert result["result"] == "ok" and result["reconnects"] == 1 and result["unknown"] == 1
    assert result["errors"] == ["malformed_frame", "connection_lost", "unknown_character"]
    assert daemon.connections == 2
    # the session settings are re-applied on the new connection
    assert [u.characters for u in daemon.updates] == [["bram", "mara"], ["bram", "mara"]]
    assert daemon.received == ["conversation.item.create", "response.create"]


def test_unreachable_daemon_is_reported_and_retried_with_backoff(harness: list[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run(harness, "unreachable", f"ws://127.0.0.1:{port}/v1/realtime")[-1]
    assert result["result"] == "ok"
    assert result["errors"][:3] == ["connect_failed"] * 3


@pytest.mark.models
def test_conversation_with_the_daemon(harness: list[str], daemon, tmp_path: Path) -> None:
    """A text turn, a spoken turn (server VAD) and a push-to-talk turn over msgpack,
    against the real daemon and models."""
    from tests.speech import speak_pcm16, words

    rate = 22050  # not the session rate: the C# resampler brings it to 16 kHz
    wav = write_wav(
        tmp_path / "turn.wav",
        speak_pcm16("Mara, what do you know about the lights on the old mill?", rate, pad_s=0.3),
        rate,
    )
    result = run(harness, "converse", daemon.ws, str(wav), timeout=420)[-1]
    assert result["result"] == "ok" and result["errors"] == []
    text = result["text_turn"]
    assert text["character"] == "bram" and text["reason"] == "addressed"
    assert text["scores"]["bram"] > text["scores"]["mara"]
    # text streams a sentence at a time (finishing.py): a one-sentence reply is one delta
    assert text["text_deltas"] >= 1 and text["audio_deltas"] > 1 and text["audio_ms"] > 500
    spoken = result["audio_turn"]
    assert words(spoken["transcript"]) & {"mill", "lights", "mara"}, spoken["transcript"]
    assert spoken["character"] in {"bram", "mara"}
    assert spoken["text"] and spoken["audio_ms"] > 500
    ptt = result["push_to_talk_turn"]
    assert words(ptt["transcript"]) & {"mill", "lights", "mara"}, ptt["transcript"]
    assert ptt["text"] and ptt["audio_ms"] > 500
