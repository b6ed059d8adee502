"""Fake engines scripted by input, for tests of orchestration without models.

They honour the same seams as the real engines, take injectable delays and failures,
and are deterministic. End-to-end tests use the real engines instead.

`register_fakes` puts them in the engine registry by name (`fake` for every kind, and
an `echo` LLM), so a daemon process can be started on them from settings alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personae.daemon.characters import VoiceConfig
from personae.daemon.engines import registry
from personae.daemon.engines.base import (
    INPUT_SAMPLE_RATE,
    AudioChunk,
    ChatMessage,
    Embedder,
    GenerationRequest,
    LLMEngine,
    STTEngine,
    Transcript,
    TTSEngine,
    VADEngine,
    VADStream,
)
from personae.daemon.session.prompt import system_text


class EnergyVADStream(VADStream):
    def __init__(self, threshold: float) -> None:
        self._threshold = threshold

    def probability(self, frame: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(frame)))) if len(frame) else 0.0
        return 0.95 if rms >= self._threshold else 0.02


class FakeVAD(VADEngine):
    """Speech wherever the signal is louder than `threshold` RMS (tones count as speech)."""

    name = "fake"

    def __init__(self, *, threshold: float = 0.02) -> None:
        self.threshold = threshold

    def stream(self) -> VADStream:
        return EnergyVADStream(self.threshold)


class FakeSTT(STTEngine):
    """Scripted transcripts: in order, or `text_for(audio)` computed from the input.

    `delay_s` simulates decoding time.
    """

    name = "fake"

    def __init__(
        self,
        transcripts: Sequence[str] = (),
        *,
        delay_s: float = 0.0,
        text_for: Callable[[np.ndarray], str] | None = None,
    ) -> None:
        self.transcripts = list(transcripts)
        self.delay_s = delay_s
        self.text_for = text_for
        self.calls: list[tuple[float, tuple[str, ...]]] = []  # (seconds of audio, hotwords)

    def transcribe(self, audio: np.ndarray, *, hotwords: Sequence[str] = ()) -> Transcript:
        self.calls.append((len(audio) / INPUT_SAMPLE_RATE, tuple(hotwords)))
        time.sleep(self.delay_s)
        if self.text_for is not None:
            text = self.text_for(audio)
        else:
            text = self.transcripts.pop(0) if self.transcripts else ""
        return Transcript(text=text, duration_s=len(audio) / INPUT_SAMPLE_RATE)


@dataclass
class FakeLLM(LLMEngine):
    """Replies from `reply(request)`, word by word, `token_delay_s` apart.

    `fail_after` raises mid-reply after that many words; `stall_s` sleeps before the
    first word. Every request is recorded in `requests`.
    """

    reply: Callable[[GenerationRequest], str] = lambda req: "Hello there. I am fine."
    token_delay_s: float = 0.0
    fail_after: int | None = None
    stall_s: float = 0.0
    requests: list[GenerationRequest] = field(default_factory=list)
    #: requests given to `prime` (prompts an engine would prefill ahead of time)
    primed: list[GenerationRequest] = field(default_factory=list)
    adapters: dict[str, str] = field(default_factory=dict)
    name: str = "fake"
    supports_adapters: bool = True

    def prime(self, request: GenerationRequest) -> None:
        self.primed.append(request)

    def count_tokens(self, messages: Sequence[ChatMessage], reply: str) -> tuple[int, int]:
        """Words stand for tokens."""
        return sum(len(m.content.split()) for m in messages), len(reply.split())

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        self.requests.append(request)
        if self.stall_s:
            cancel.wait(self.stall_s)
        # a word stands for a token: max_tokens cuts the reply, as it would a model's
        words = re.findall(r"\S+\s*", self.reply(request))[: request.params.max_tokens]
        for i, word in enumerate(words):
            if cancel.is_set():
                return
            if self.fail_after is not None and i >= self.fail_after:
                raise RuntimeError("fake LLM failure")
            if self.token_delay_s:
                cancel.wait(self.token_delay_s)
            yield word

    def load_adapter(self, name: str, path: str) -> None:
        self.adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        self.adapters.pop(name)


class FakeTTS(TTSEngine):
    """A 220 Hz tone scaled by pitch, 60 ms per character divided by rate."""

    name = "fake"

    def __init__(self, *, sample_rate: int = 16000, ms_per_char: float = 60.0) -> None:
        self.sample_rate = sample_rate
        self.ms_per_char = ms_per_char
        self.spoken: list[tuple[str, VoiceConfig]] = []

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        self.spoken.append((text, voice))
        n = int(len(text) * self.ms_per_char / 1000 / voice.rate * self.sample_rate)
        t = np.arange(n) / self.sample_rate
        tone = 0.3 * np.sin(2 * np.pi * 220 * voice.pitch * t)
        yield AudioChunk((tone * 32767).astype(np.int16), self.sample_rate)


class FakeEmbedder(Embedder):
    """Bag of hashed words: texts sharing words are close. Stable across processes."""

    name = "fake"

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if len(word) > 3:
                    h = int.from_bytes(
                        hashlib.blake2b(word.encode(), digest_size=4).digest(), "little"
                    )
                    out[row, h % self.dims] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def tone(seconds: float, *, rate: int = 16000, freq: float = 300.0, amp: float = 0.3) -> bytes:
    """PCM16 of a tone: what FakeVAD hears as speech."""
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes()


def silence(seconds: float, *, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


# ---------------------------------------------------------------------- registered by name

PROBE = re.compile(r"probe ([0-9a-z_-]+)")


def echo_probe(request: GenerationRequest) -> str:
    """The reply names the `probe` token of the player's last line ("probe abc123" ->
    "Heard abc123. ..."), so a client under load tells its own replies from others'."""
    user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    found = PROBE.findall(user)
    token = found[-1] if found else "nothing"
    return f"Heard {token}. Come back tomorrow, friend."


@dataclass(frozen=True, kw_only=True)
class FakeOptions:
    """How the fakes that a daemon builds by name behave."""

    #: seconds between the words of the `fake` LLM
    token_delay_s: float = 0.0
    #: audio the `fake` TTS makes per character of text
    tts_ms_per_char: float = 60.0
    #: replies the `fake` LLM generates at once (0 = any number); the others wait inside
    #: the engine, as on a CPU model that decodes one reply at a time
    llm_parallel: int = 0


# what `from_settings` builds with: one daemon process, one set of options
_options = FakeOptions()


class RegisteredVAD(FakeVAD):
    @classmethod
    def from_settings(cls, settings: Any) -> RegisteredVAD:
        return cls()


class RegisteredSTT(FakeSTT):
    """Hears "probe spoken" in any audio."""

    @classmethod
    def from_settings(cls, settings: Any) -> RegisteredSTT:
        return cls(text_for=lambda audio: "probe spoken")


class RegisteredEmbedder(FakeEmbedder):
    @classmethod
    def from_settings(cls, settings: Any) -> RegisteredEmbedder:
        return cls()


class RegisteredTTS(FakeTTS):
    @classmethod
    def from_settings(cls, settings: Any) -> RegisteredTTS:
        return cls(ms_per_char=_options.tts_ms_per_char)


@dataclass
class ProbeLLM(FakeLLM):
    """The `fake` LLM: answers with `echo_probe`."""

    gate: Any = field(default_factory=contextlib.nullcontext)

    @classmethod
    def from_settings(cls, settings: Any) -> ProbeLLM:
        n = _options.llm_parallel
        gate = threading.BoundedSemaphore(n) if n else contextlib.nullcontext()
        return cls(reply=echo_probe, token_delay_s=_options.token_delay_s, gate=gate)

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        with self.gate:
            yield from super().generate(request, cancel)


class EchoLLM(LLMEngine):
    """The `echo` LLM: answers with the system prompt, so a test reads what the
    character was told (memory included)."""

    name = "echo"
    # the default cast wears adapters: accept them (the echo reads no weights)
    supports_adapters = True

    def __init__(self) -> None:
        self.adapters: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> EchoLLM:
        return cls()

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        yield system_text(request.messages)

    def load_adapter(self, name: str, path: str) -> None:
        self.adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        self.adapters.pop(name)


def register_fakes(options: FakeOptions = FakeOptions(), *, voices: bool = False) -> None:
    """Register the fakes in this process's engine registry: `fake` for every kind and
    the `echo` LLM. `voices` also speaks the default cast's piper, espeak and kokoro
    voices with the fake TTS (a daemon then starts in seconds)."""
    global _options
    _options = options
    here = __name__
    for kind, cls in (
        ("vad", "RegisteredVAD"),
        ("stt", "RegisteredSTT"),
        ("embedder", "RegisteredEmbedder"),
        ("tts", "RegisteredTTS"),
        ("llm", "ProbeLLM"),
    ):
        registry.register(kind, "fake", f"{here}:{cls}")  # type: ignore[arg-type]
    registry.register("llm", "echo", f"{here}:EchoLLM")
    if voices:
        for name in ("piper", "espeak", "kokoro"):
            registry.register("tts", name, f"{here}:RegisteredTTS")
