"""Spoken questions for the benchmarks, made at run time by the daemon's own engines.

`voice` "piper" is the bundled Piper voice; any other value is an espeak-ng voice.
(bench/ imports nothing from tests/, whose tests.speech does the same for the tests.)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from personae.daemon.audio import int16_to_float32, resample
from personae.daemon.characters import VoiceConfig


@lru_cache(maxsize=1)
def _piper():
    from personae.daemon.engines.tts_piper import PiperTTS

    return PiperTTS(threads=1)


def speak(text: str, voice: str = "piper", *, rate: int = 16_000) -> np.ndarray:
    """`text` spoken in `voice` as float32 mono at `rate`."""
    if voice == "piper":
        engine, config = _piper(), VoiceConfig(engine="piper")
    else:
        from personae.daemon.engines.tts_espeak import EspeakTTS

        engine, config = EspeakTTS(), VoiceConfig(engine="espeak", voice=voice)
    chunks = list(engine.synthesize(text, config))
    audio = int16_to_float32(np.concatenate([c.pcm for c in chunks]))
    return resample(audio, chunks[0].sample_rate, rate).astype(np.float32)
