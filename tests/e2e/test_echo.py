"""A character on speakers does not interrupt itself: real models, a real socket, a client
that plays the reply in real time and streams its microphone back with the room's echo
of it (daemon/testing/echo_room.py)."""

from __future__ import annotations

import pytest

from personae.daemon.testing.echo_room import EchoClient, Room
from personae.sdk import connect
from personae.sdk import protocol as p
from tests.speech import speak, words

pytestmark = pytest.mark.models

LONG_ASK = "Wren, tell me everything you know about the rooftops, the market and the mill."


def _reply_done(event: p.ServerEvent) -> bool:
    return event.type == "response.done"


async def _ask(session) -> None:
    await session.add_text(LONG_ASK)
    await session.respond(character="wren")


async def test_the_character_s_own_echo_does_not_barge_in_or_become_a_turn(daemon) -> None:
    async with await connect(daemon.ws) as session:
        await _ask(session)
        client = EchoClient(session, Room(delay_ms=180, gain_db=-6, seed=3))
        events = await client.run(until=_reply_done)
    done = [e for e in events if e.type == "response.done"]
    assert done[0].response.status == "completed", done[0].response
    audio_ms = done[0].response.audio_sent_ms
    assert audio_ms > 1000  # the room had a reply long enough to echo
    kinds = {e.type for e in events}
    assert "input_audio_buffer.speech_started" not in kinds
    assert "conversation.item.input_audio_transcription.completed" not in kinds


async def test_echo_is_heard_as_barge_in_when_the_check_is_off_for_a_client_with_aec(
    daemon,
) -> None:
    """A client that declares its own echo cancellation gets the plain VAD: the same
    echo (which its AEC would have removed) now barges in. Shows the check is what
    keeps the echo out above, not a quiet room."""
    async with await connect(daemon.ws) as session:
        await session.update(client_echo_cancellation=True)
        await _ask(session)
        client = EchoClient(session, Room(delay_ms=180, gain_db=-6, seed=3))
        events = await client.run(until=_reply_done)
    done = next(e for e in events if e.type == "response.done")
    assert any(e.type == "input_audio_buffer.speech_started" for e in events)
    assert done.response.status == "cancelled" and done.response.status_reason == "turn_detected"


async def test_the_player_talking_over_the_echo_still_barges_in(daemon) -> None:
    speech = speak("Wait, wait. Stop there.", voice="en-us+m3")
    async with await connect(daemon.ws) as session:
        await _ask(session)
        client = EchoClient(
            session, Room(delay_ms=250, gain_db=-10, seed=5), speech=speech, speech_at_s=0.7
        )
        events = await client.run(
            until=lambda e: e.type == "conversation.item.input_audio_transcription.completed"
        )
    done = next(e for e in events if e.type == "response.done")
    assert done.response.status == "cancelled" and done.response.status_reason == "turn_detected"
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    heard = events[-1]
    assert words(heard.transcript) & {"wait", "stop"}, heard.transcript
    # the turn began where the player did in the microphone stream, not in the echo
    assert client.play_start_ms is not None and client.speech_ms is not None
    assert started.audio_start_ms >= client.play_start_ms + client.speech_ms - 100
