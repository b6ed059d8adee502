"""Spoken English made at test time, for tests that need a real voice (VAD, STT, e2e).

    from tests.speech import speak, speak_pcm16
    audio = speak("Hello Brom, sell me a sword.")            # float32, 16 kHz, Piper
    audio = speak("Hello there.", voice="en-us+f3", pad_s=0.5)  # espeak-ng, silence around
    pcm = speak_pcm16("Hello there.", 24_000)                  # wire-ready PCM16 bytes

`voice="piper"` is the bundled Piper voice, without its sampling noise so every run
hears the same audio; any other value is an espeak-ng voice.
Results are cached per process, so repeating a sentence costs nothing. `words()`
normalises a transcript for key-word assertions.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from personae.daemon.audio import float32_to_pcm16, int16_to_float32, resample
from personae.daemon.characters import VoiceConfig

PIPER = "piper"


@lru_cache(maxsize=1)
def _piper():
    from personae.daemon.engines.tts_piper import PiperTTS

    # no sampling noise: a test hears the same audio on every run
    return PiperTTS(threads=1, deterministic=True)


@lru_cache(maxsize=128)
def _speak(text: str, rate: int, voice: str, pad_s: float) -> np.ndarray:
    if voice == PIPER:
        engine, config = _piper(), VoiceConfig(engine="piper")
    else:
        from personae.daemon.engines.tts_espeak import EspeakTTS

        engine, config = EspeakTTS(), VoiceConfig(engine="espeak", voice=voice)
    chunks = list(engine.synthesize(text, config))
    if not chunks:
        raise ValueError(f"TTS produced no audio for {text!r}")
    audio = int16_to_float32(np.concatenate([c.pcm for c in chunks]))
    audio = resample(audio, chunks[0].sample_rate, rate)
    pad = np.zeros(round(pad_s * rate), dtype=np.float32)
    out = np.concatenate([pad, audio, pad]).astype(np.float32)
    out.flags.writeable = False  # shared through the cache
    return out


def speak(text: str, *, rate: int = 16_000, voice: str = PIPER, pad_s: float = 0.0) -> np.ndarray:
    """`text` spoken as float32 mono at `rate`, with `pad_s` of silence on each side."""
    return _speak(text, rate, voice, pad_s).copy()


def speak_pcm16(text: str, rate: int = 16_000, *, voice: str = PIPER, pad_s: float = 0.0) -> bytes:
    """`text` spoken as PCM16 little-endian mono bytes at `rate`."""
    return float32_to_pcm16(_speak(text, rate, voice, pad_s))


def silence(seconds: float, *, rate: int = 16_000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def words(text: str) -> set[str]:
    """Lower-case words of a transcript, punctuation dropped: for key-word assertions."""
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def median_f0(x: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median pitch over voiced 40 ms frames, by normalised autocorrelation."""
    frame, lo, hi = int(0.04 * rate), int(rate / fmax), int(rate / fmin)
    loud = 0.03 * np.max(np.abs(x))
    f0s = []
    for start in range(0, len(x) - frame, frame // 2):
        w = x[start : start + frame] - np.mean(x[start : start + frame])
        if np.sqrt(np.mean(w**2)) < loud:
            continue
        ac = np.correlate(w, w, "full")[frame - 1 :]
        ac = ac / ac[0]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5:  # clearly periodic: voiced
            f0s.append(rate / lag)
    assert len(f0s) > 10, "too few voiced frames to estimate pitch"
    return float(np.median(f0s))
