"""espeak-ng fallback TTS: the system binary, one WAV per sentence.

Robotic but instant, dozens of voices and variants ("en-us+f3", "en-gb+m2"), and
already installed wherever Piper is (Piper phonemizes with espeak-ng data).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

from personae.daemon.audio import float32_to_int16, read_wav
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.base import AudioChunk, TTSCapabilities, TTSEngine
from personae.daemon.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

DEFAULT_VOICE = "en-us"
BASE_WPM = 175  # espeak-ng's default speed
BASE_PITCH = 50  # espeak-ng's default pitch, on its 0-99 scale
#: measured: each step of -p raises F0 by about 1% (-p 50 -> 103 Hz, 65 -> 119, 80 -> 139)
PITCH_STEPS_PER_LN = 100.0
TIMEOUT_S = 30.0


def wpm_for(rate: float) -> int:
    return max(80, min(450, round(BASE_WPM * rate)))


def pitch_for(pitch: float) -> int:
    return max(0, min(99, round(BASE_PITCH + PITCH_STEPS_PER_LN * math.log(pitch))))


class EspeakTTS(TTSEngine):
    name = "espeak"
    capabilities = TTSCapabilities(streaming=False, voices=(DEFAULT_VOICE,))

    def __init__(self, *, binary: str = "espeak-ng") -> None:
        path = shutil.which(binary)
        if path is None:
            raise ConfigError(
                f"{binary!r} not found: install it with `apt-get install espeak-ng` "
                "(or `brew install espeak-ng`)"
            )
        self._binary = path

    @classmethod
    def from_settings(cls, settings: Settings) -> EspeakTTS:
        return cls()

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        name = DEFAULT_VOICE if voice.voice == "default" else voice.voice
        # Text goes through stdin, never argv: a line starting with "-" stays text.
        cmd = [self._binary, "--stdin", "--stdout", "-b", "1", "-v", name,
               "-s", str(wpm_for(voice.rate)), "-p", str(pitch_for(voice.pitch))]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, input=text.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"timed out after {TIMEOUT_S} s", engine=self.name) from exc
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip()
            raise EngineError(f"voice {name!r}: {detail}", engine=self.name)
        audio, rate = read_wav(proc.stdout)
        if audio.size:
            yield AudioChunk(pcm=float32_to_int16(audio), sample_rate=rate)
