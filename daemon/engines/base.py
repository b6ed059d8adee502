"""The seams: one small abstract class per engine kind.

Each engine does one blocking job; the session runs them in worker threads and owns
concurrency, cancellation and timing. Capabilities are data on the class, not
subclasses. Audio inside the daemon is numpy: float32 in [-1, 1] at 16 kHz on the way
in (VAD, STT), int16 at the engine's own rate on the way out (TTS).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from personae.daemon.characters import GenerationParams, VoiceConfig

INPUT_SAMPLE_RATE = 16_000


class VADStream(ABC):
    """Voice activity for one audio stream (one per session: it carries model state)."""

    #: samples per frame that `probability` accepts, at INPUT_SAMPLE_RATE
    frame_samples: int = 512

    @abstractmethod
    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of one float32 frame of exactly `frame_samples` samples."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget the stream's state (after a long pause or a cleared buffer)."""


class VADEngine(ABC):
    name: str = "vad"

    @abstractmethod
    def stream(self) -> VADStream:
        """A fresh stateful stream for one session."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str = "en"
    duration_s: float = 0.0


class STTEngine(ABC):
    name: str = "stt"

    @abstractmethod
    def transcribe(self, audio: np.ndarray, *, hotwords: Sequence[str] = ()) -> Transcript:
        """Transcribe float32 mono audio at 16 kHz. `hotwords` biases towards names."""


class Embedder(ABC):
    """Sentence embeddings for the router."""

    name: str = "embedder"

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dims) float32, each row L2-normalised."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    messages: Sequence[ChatMessage]
    params: GenerationParams
    #: resident adapter name (see LLMEngine.load_adapter); None for the base model
    adapter: str | None = None
    seed: int | None = None


class LLMEngine(ABC):
    name: str = "llm"
    #: whether load_adapter/unload_adapter are supported
    supports_adapters: bool = False

    @abstractmethod
    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        """Yield text deltas as they are decoded; stop promptly once `cancel` is set.

        Stop sequences in `request.params.stop` are honoured and never yielded.
        """

    def load_adapter(self, name: str, path: str) -> None:
        raise NotImplementedError(f"{self.name} engine does not load adapters")

    def unload_adapter(self, name: str) -> None:
        raise NotImplementedError(f"{self.name} engine does not load adapters")

    def warmup(self) -> None:  # noqa: B027 - optional hook
        """Run one tiny generation so the first player does not pay for lazy init."""

    def prompt_tokens(self) -> dict[str, int]:
        """Prompt tokens so far: {"reused": taken from a prompt cache, "computed":
        prefilled}; empty for engines that do not know."""
        return {}

    def count_tokens(self, messages: Sequence[ChatMessage], reply: str) -> tuple[int, int] | None:
        """(prompt tokens, reply tokens) as this engine's tokenizer counts them, for
        `usage`; None for engines that cannot count."""
        return None

    def prime(self, request: GenerationRequest) -> None:  # noqa: B027 - optional hook
        """Prefill `request`'s prompt ahead of time, for engines that reuse prompt state.

        Replies whose prompts begin the same way (the character's system prompt) then
        skip that part of their prefill.
        """


@dataclass(frozen=True, slots=True)
class Phone:
    """One phoneme an engine spoke, timed on its chunk's audio (lip-sync and word timings)."""

    symbol: str  # IPA, as the engine's phonemizer wrote it; " " or "" for a pause
    start_ms: float  # from the start of the chunk's pcm
    duration_ms: float
    word: int = -1  # index of the word of the sentence it belongs to; -1 outside words


@dataclass(slots=True)
class AudioChunk:
    pcm: np.ndarray  # int16 mono
    sample_rate: int
    # the phonemes of this chunk's audio, where the engine knows them (Piper, espeak-ng, Kokoro)
    phones: tuple[Phone, ...] = ()


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    streaming: bool = False  # yields several chunks per sentence
    voices: tuple[str, ...] = field(default_factory=tuple)


class TTSEngine(ABC):
    name: str = "tts"
    capabilities: TTSCapabilities = TTSCapabilities()

    @abstractmethod
    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        """Speak one sentence in `voice`; chunks are int16 at the engine's rate."""

    def check_voice(self, voice: VoiceConfig) -> None:  # noqa: B027 - optional hook
        """Raise ConfigError when `voice` names nothing this engine can speak (checked
        when a character loads, not at its first reply)."""
