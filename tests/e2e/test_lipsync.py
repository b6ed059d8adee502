"""npc.viseme over a real socket, from the real Piper and Kokoro engines (espeak-ng: tests/engines/test_tts_timings.py)."""

from __future__ import annotations

import itertools

import pytest

from personae.daemon.engines.phones import words_of
from personae.daemon.session.splitter import spoken_text
from personae.sdk import connect
from tests.speech import speak_pcm16

pytestmark = pytest.mark.models

VISEMES = {"sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"}


@pytest.mark.parametrize(("character", "engine"), [("mara", "piper"), ("wren", "kokoro")])
async def test_a_spoken_reply_carries_visemes_and_words_on_its_audio(
    daemon, character, engine
) -> None:
    async with await connect(daemon.ws, framing="msgpack") as session:
        await session.add_text("Tell me about the river and the old mill.")
        await session.respond(character=character)
        reply = await session.collect_reply()
    assert reply.status == "completed" and reply.character == character
    audio_ms = len(reply.audio) / 2 / reply.sample_rate * 1000
    visemes = reply.visemes
    assert visemes and {v.viseme for v in visemes} <= VISEMES
    assert len({v.viseme for v in visemes}) >= 5  # a mouth that moves, not one shape
    # one track across the whole reply: each piece's visemes follow without gaps
    assert visemes[0].start_ms == 0
    for a, b in itertools.pairwise(visemes):
        assert b.start_ms >= a.start_ms
    end = visemes[-1].start_ms + visemes[-1].duration_ms
    assert abs(end - audio_ms) <= len(reply.sentences) + 2  # ms rounding per piece
    # every spoken word, in order, within the audio
    spoken = [w for s in reply.sentences for w in words_of(spoken_text(s.text))]
    assert [w.text for w in reply.words] == spoken
    assert all(0 <= w.start_ms < audio_ms for w in reply.words)
    # each word lies inside its sentence's audio
    for s in reply.sentences:
        inside = [w for w in reply.words if s.audio_start_ms <= w.start_ms]
        inside = [w for w in inside if w.start_ms < s.audio_start_ms + s.audio_duration_ms]
        assert [w.text for w in inside] == words_of(spoken_text(s.text))


async def test_barge_in_over_real_speech_sends_no_viseme_past_the_cut(daemon) -> None:
    async with await connect(daemon.ws) as session:
        await session.add_text(
            "Bram, tell me everything about the forge, the swords and the old mill."
        )
        await session.respond()
        first = await session.wait_for("response.output_audio.delta", timeout=120)
        rid = first.response_id
        await session.append_audio(speak_pcm16("Wait, wait. Stop there.", 16000))
        events = []
        while True:
            e = await session.next_event(timeout=60)
            events.append(e)
            if e.type == "response.done" and e.response.id == rid:
                break
        await session.append_audio(bytes(2 * 16000))
        rest = []
        while True:
            e = await session.next_event(timeout=120)
            rest.append(e)
            if e.type == "response.done":
                break
    done = events[-1]
    assert done.response.status == "cancelled"
    cut = done.response.audio_sent_ms
    mine = [e for e in events if e.type == "npc.viseme" and e.response_id == rid]
    starts = [t.start_ms for e in mine for t in [*e.visemes, *e.words]]
    assert starts and max(starts) < cut
    assert not [e for e in rest if e.type == "npc.viseme" and e.response_id == rid]
