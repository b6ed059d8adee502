"""Semantic endpointing lite: a turn whose transcript reads as finished ends after a
shorter silence (settings.vad_silence_complete_ms), timed in audio, not wall clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from personae.daemon.session.endpointing import (
    Endpointer,
    PauseEnded,
    PauseStarted,
    SpeechEnded,
    looks_complete,
)
from personae.daemon.testing import EnergyVADStream, FakeSTT, silence, tone
from personae.daemon.testing.harness import Harness, fake_service, running
from personae.sdk import protocol as p

SR = 16_000
FRAME_MS = 32  # 512-sample VAD frames
# A 1.0 s tone covers 31.25 frames: the 32nd frame is half tone, still speech, so the
# pause starts at frame 33 and a turn ending after N silent frames ends at (32 + N) frames.
SHORT = 10  # frames: at least 300 ms
SHORT_END = (32 + SHORT) * FRAME_MS  # 1344
FULL_END = (32 + 19) * FRAME_MS  # 600 ms -> 19 frames: 1632
NAMES = ("Bram", "Bram Holloway", "blacksmith", "Mara", "Mara Quill")


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("Bram, fix my sword.", True),
        ("Okay, thanks!", True),
        ("I'm not well.", True),
        # only calling someone: the question comes after the pause
        ("Bram.", False),
        ("Hey Mara.", False),
        ("Mara Quill!", False),
        ("Hey, blacksmith.", False),
        ("Okay.", False),
        ("Wait.", False),  # holding the floor: the question follows ("Wait. Mara, where...")
        ("Wait for me at the bridge.", True),
        ("Hey Mara, where is the mill?", True),
        ("Fix my sword before nightfall.", True),
        ("Get out!", True),
        ('He said "go away."', True),
        ("and then I", False),
        ("And then I went to the.", False),
        ("I need the map, and.", False),
        ("Um.", False),
        ("Well, I was thinking...", False),
        ("Well, I was thinking…", False),
        ("Hey Mara, where is the mill", False),
        ("", False),
        (" . ", False),
    ],
)
def test_what_reads_as_a_finished_sentence(text: str, complete: bool) -> None:
    assert looks_complete(text, NAMES) is complete


def test_a_name_is_a_sentence_when_nobody_is_called_that() -> None:
    assert looks_complete("Bram.") and not looks_complete("Bram.", ["Bram Holloway"])


def voice(seconds: float) -> np.ndarray:
    return np.full(round(seconds * SR), 0.5, np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), np.float32)


def endpointer(complete_ms: int = 300) -> Endpointer:
    return Endpointer(
        EnergyVADStream(0.02),
        min_speech_ms=64,
        silence_ms=600,
        prefix_ms=0,
        complete_ms=complete_ms,
    )


def test_a_pause_marked_complete_ends_the_turn_after_the_short_silence() -> None:
    ep = endpointer()
    events = ep.feed(np.concatenate([voice(1.0), quiet(0.1)]))
    pause = events[-1]
    assert isinstance(pause, PauseStarted)
    ep.mark_complete(pause.pause)
    events = ep.feed(quiet(1.0))
    assert len(events) == 1
    ended = events[0]
    assert isinstance(ended, SpeechEnded)
    assert ended.at_ms == SHORT_END and ended.complete and not ended.truncated
    assert ended.pause == pause.pause  # the pause's transcript stands for the turn
    assert len(ended.audio) == (32 + SHORT) * 512


def test_a_pause_just_short_of_the_short_silence_keeps_the_turn() -> None:
    ep = endpointer()
    events = ep.feed(np.concatenate([voice(1.0), quiet(0.1)]))
    ep.mark_complete(events[-1].pause)
    # 9 silent frames in all (288 ms: 300 ms rounded to frames), then the player goes on
    events = ep.feed(np.concatenate([quiet((32 + 9) * 512 / SR - 1.1), voice(0.5)]))
    assert [type(e) for e in events] == [PauseEnded] and events[0].silent_ms == 9 * FRAME_MS
    assert ep.speaking


def test_a_mark_that_comes_after_the_short_silence_ends_the_turn_at_the_next_frame() -> None:
    ep = endpointer()
    events = ep.feed(np.concatenate([voice(1.0), quiet(0.4)]))  # 43 frames, 12 silent
    assert isinstance(events[-1], PauseStarted) and ep.speaking
    ep.mark_complete(events[-1].pause)
    events = ep.feed(quiet(0.1))
    assert isinstance(events[0], SpeechEnded) and events[0].at_ms == 44 * FRAME_MS


def test_speech_after_the_mark_cancels_it() -> None:
    ep = endpointer()
    events = ep.feed(np.concatenate([voice(1.0), quiet(0.1)]))
    ep.mark_complete(events[-1].pause)
    events = ep.feed(np.concatenate([quiet(0.1), voice(1.0), quiet(1.0)]))
    kinds = [type(e) for e in events]
    assert kinds == [PauseEnded, PauseStarted, SpeechEnded]
    assert not events[-1].complete  # the second pause was never marked: full silence
    assert events[-1].at_ms - events[1].at_ms == 19 * FRAME_MS


def test_a_stale_or_disabled_mark_changes_nothing() -> None:
    for complete_ms, mark in ((300, -5), (0, None), (600, None), (900, None)):
        ep = endpointer(complete_ms)
        events = ep.feed(np.concatenate([voice(1.0), quiet(0.1)]))
        ep.mark_complete(events[-1].pause if mark is None else mark)
        ended = ep.feed(quiet(1.0))[0]
        assert isinstance(ended, SpeechEnded)
        assert ended.at_ms == FULL_END and not ended.complete, complete_ms
    assert not endpointer(0).ends_early and not endpointer(600).ends_early
    assert endpointer(300).ends_early


# ----------------------------------------------------------------- in a session


def scripted(text: str) -> FakeSTT:
    return FakeSTT(text_for=lambda audio: text)


async def transcript_ready(h: Harness, after: int = 0) -> int:
    """Wait until the transcript of a pause later than `after` is in; returns that pause
    (the session signals nothing, so this polls)."""
    async with asyncio.timeout(5):
        while True:
            pieces = h.session.listener.pieces
            ready = pieces.ready() if pieces is not None else None
            if ready is not None and ready[0] > after:
                return ready[0]
            await asyncio.sleep(0.005)


async def one_turn(h: Harness, *, then: float = 0.7) -> p.ServerEvent:
    """The player says a second of something, goes quiet; the text is ready 100 ms into
    the pause, before the short silence is over."""
    h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
    h.send(p.InputAudioBufferAppend(audio=silence(0.1)))
    await transcript_ready(h)
    h.send(p.InputAudioBufferAppend(audio=silence(then)))
    return await h.wait_type("conversation.item.input_audio_transcription.completed")


def vad_service(stt: FakeSTT, **settings: object):
    # echo_check off: the fake voice and the fake player are both plain tones, which
    # the echo check (tested with real voices in test_echo_check.py) would rightly take
    # for echo while the reply plays, before it has measured the room
    settings.setdefault("echo_check", False)
    return fake_service(stt=stt, vad_prefix_ms=0, vad_silence_ms=600, **settings)


async def test_a_complete_sentence_ends_the_turn_after_the_short_silence() -> None:
    stt = scripted("Hey Mara, where is the mill?")
    async with running(vad_service(stt)) as h:
        done = await one_turn(h)
        await h.wait_type("response.done")
    stopped = h.of_type("input_audio_buffer.speech_stopped")
    assert [e.audio_end_ms for e in stopped] == [SHORT_END]
    types = [e.type for e in h.events]
    assert (
        types.index("input_audio_buffer.speech_started")
        < types.index("input_audio_buffer.speech_stopped")
        < types.index("input_audio_buffer.committed")
        < types.index("conversation.item.input_audio_transcription.completed")
        < types.index("npc.route")
    )
    committed = h.of_type("input_audio_buffer.committed")[0]
    assert stopped[0].item_id == committed.item_id == done.item_id
    assert done.transcript == "Hey Mara, where is the mill?"
    # the pause's transcript is the turn's: no second decode
    assert len(stt.calls) == 1 and abs(stt.calls[0][0] - 1.0) < 0.05


async def test_an_unfinished_sentence_waits_the_full_silence() -> None:
    stt = scripted("and then I")
    async with running(vad_service(stt)) as h:
        done = await one_turn(h)
    assert [e.audio_end_ms for e in h.of_type("input_audio_buffer.speech_stopped")] == [FULL_END]
    assert done.transcript == "and then I" and len(stt.calls) == 1


async def test_text_that_is_ready_late_ends_the_turn_at_the_next_frame() -> None:
    stt = FakeSTT(text_for=lambda audio: "Where is the mill?", delay_s=0.05)
    async with running(vad_service(stt)) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.4)))  # past the short silence
        await transcript_ready(h)
        assert not h.of_type("input_audio_buffer.speech_stopped")
        h.send(p.InputAudioBufferAppend(audio=silence(0.1)))
        await h.wait_type("conversation.item.input_audio_transcription.completed")
    # 1.4 s fed is 43.75 frames: the next chunk completes frame 44, and the turn ends there
    assert [e.audio_end_ms for e in h.of_type("input_audio_buffer.speech_stopped")] == [44 * 32]
    assert len(stt.calls) == 1


async def test_speech_before_the_short_silence_is_over_keeps_the_turn_going() -> None:
    stt = FakeSTT(text_for=lambda audio: f"I heard {len(audio) / SR:.1f} seconds.")
    async with running(vad_service(stt)) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.1)))
        first = await transcript_ready(h)  # complete, but the player goes on after 200 ms
        for chunk in (silence(0.1), tone(1.0), silence(0.1)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        await transcript_ready(h, after=first)
        h.send(p.InputAudioBufferAppend(audio=silence(0.7)))
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
        await h.wait_type("response.done")
    stopped = h.of_type("input_audio_buffer.speech_stopped")
    # one turn, ended 300 ms into its second pause (the tone ends at 2.2 s: frame 69)
    assert [e.audio_end_ms for e in stopped] == [(69 + SHORT) * FRAME_MS]
    assert done.transcript == "I heard 2.2 seconds."
    assert len(h.of_type("conversation.item.input_audio_transcription.completed")) == 1


@pytest.mark.parametrize("complete_ms", [0, 600, 800])
async def test_with_the_setting_off_every_turn_waits_the_full_silence(complete_ms: int) -> None:
    stt = scripted("Hey Mara, where is the mill?")
    async with running(vad_service(stt, vad_silence_complete_ms=complete_ms)) as h:
        await one_turn(h)
    assert [e.audio_end_ms for e in h.of_type("input_audio_buffer.speech_stopped")] == [FULL_END]


async def test_the_client_s_longer_silence_keeps_the_short_one() -> None:
    stt = scripted("Where is the mill?")
    async with running(vad_service(stt)) as h:
        td = p.ServerVAD(silence_duration_ms=1000)
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=td)))
        await h.wait_type("session.updated")
        await one_turn(h, then=1.2)
    assert [e.audio_end_ms for e in h.of_type("input_audio_buffer.speech_stopped")] == [SHORT_END]


async def test_speaking_again_after_an_early_end_is_a_new_turn() -> None:
    stt = FakeSTT(text_for=lambda audio: f"I heard {len(audio) / SR:.1f} seconds.")
    async with running(vad_service(stt)) as h:
        first = await one_turn(h, then=0.25)  # the turn ends; the player goes on
        for chunk in (tone(0.5), silence(0.7)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        second = await h.wait_for(
            lambda e: (
                e.type == "conversation.item.input_audio_transcription.completed"
                and e.item_id != first.item_id
            )
        )
    started = h.of_type("input_audio_buffer.speech_started")
    assert len(started) == 2 and started[1].item_id == second.item_id
    assert first.transcript == "I heard 1.0 seconds."
    assert second.transcript.startswith("I heard 0.")


async def test_push_to_talk_is_not_ended_by_a_complete_sentence() -> None:
    stt = scripted("Where is the mill?")
    async with running(vad_service(stt)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=None)))
        await h.wait_type("session.updated")
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.1)))
        await transcript_ready(h)
        h.send(p.InputAudioBufferAppend(audio=silence(1.0)))
        await asyncio.sleep(0.1)
        assert not h.of_type("input_audio_buffer.committed")
        h.send(p.InputAudioBufferCommit())
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
    assert done.transcript == "Where is the mill?" and len(stt.calls) == 1


def test_a_turn_keeps_the_words_the_echo_check_hid_from_the_vad() -> None:
    """The VAD judged `heard` (the microphone with what the echo check took out), which
    hid the player's first 0.8 s; the turn reaches back over those frames, up to a
    second, as well as its usual prefix."""
    speech = np.full(16000 * 2, 0.3, np.float32)  # 2 s the energy VAD calls speech
    heard = speech.copy()
    heard[:12800] = 0.0  # the first 0.8 s taken out before the VAD heard it
    room = np.zeros(16000, np.float32)

    def turn(heard_start: np.ndarray) -> np.ndarray:
        ep = Endpointer(EnergyVADStream(0.01), prefix_ms=300, silence_ms=300)
        events = ep.feed(np.concatenate([room, speech, room]),
                         np.concatenate([room, heard_start, room]))  # fmt: skip
        return next(e for e in events if isinstance(e, SpeechEnded)).audio

    kept = turn(heard)
    assert np.count_nonzero(kept) == len(speech)  # all of it, the hidden 0.8 s included
    plain = turn(speech)  # nothing hidden: the usual prefix of room tone only
    assert np.count_nonzero(plain) == len(speech)
    assert len(kept) <= len(plain) + 512  # no more than what was hidden, and its prefix
