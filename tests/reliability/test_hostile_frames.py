"""Hostile frames on a real daemon: huge numbers, deep nesting and too many turns get a
precise `error` event and the session carries on."""

from __future__ import annotations

import math
from collections.abc import Iterator

import msgpack
import pytest
from websockets.sync.client import connect

from personae.daemon.testing import silence, tone
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive, say, send, until

GAME_EVENT = '{"type": "game.event", "name": "gift", "description": "gold", "data": {"n": %s}}'
HOSTILE = [
    (GAME_EVENT % ("1" * 5000), "number_out_of_range"),
    (GAME_EVENT % "1e400", "number_out_of_range"),
    (GAME_EVENT % ("[" * 5000 + "]" * 5000), "too_deep"),
    (
        '{"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0, '
        '"audio_end_ms": 1000000000000000000000000000000}',
        "number_out_of_range",
    ),
    (
        msgpack.packb({"type": "game.event", "name": "x", "data": {"v": math.inf}}),
        "number_out_of_range",
    ),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[Daemon]:
    state = tmp_path_factory.mktemp("hostile")
    with Daemon(state_dir=state, fakes=FakeEngines(voices=False, tts_ms_per_char=1)) as d:
        yield d


def test_hostile_numbers_and_nesting_get_errors_and_the_session_lives(daemon) -> None:
    with connect(daemon.ws) as ws:
        assert receive(ws)["type"] == "session.created"
        for frame, code in HOSTILE:
            ws.send(frame)
            error = receive(ws)
            assert error["type"] == "error", error
            assert error["error"]["code"] == code
        send(ws, say("Hello Bram."))
        send(ws, {"type": "response.create", "response": {"character": "bram"}})
        assert until(ws, "response.done")["response"]["status"] == "completed"


def test_server_vad_turns_past_the_pending_limit_are_refused_not_fatal(tmp_path) -> None:
    slow = FakeEngines(voices=False, token_delay_s=0.5, tts_ms_per_char=1)
    # the fake voice and these turns are both plain tones, which the echo check rightly
    # takes for the character's own voice: off, so every tone is a turn
    settings = {"echo_check": False}
    with Daemon(state_dir=tmp_path, fakes=slow, settings=settings) as d, connect(d.ws) as ws:
        assert receive(ws)["type"] == "session.created"
        turn = tone(0.4) + silence(1.2)
        for _ in range(30):  # far faster than the replies come
            send(ws, {"type": "input_audio_buffer.append", "audio": turn})
        codes = set()
        while "too_many_pending_turns" not in codes:
            event = receive(ws, timeout=30)
            if event["type"] == "error":
                codes.add(event["error"]["code"])
        assert codes == {"too_many_pending_turns"}
        # still serving: a typed line is acknowledged
        send(ws, say("Are you still there?"))
        while (event := receive(ws, timeout=30))["type"] != "conversation.item.created" or (
            event["item"]["role"] != "user"
            or event["item"]["content"][0].get("text") != "Are you still there?"
        ):
            pass
