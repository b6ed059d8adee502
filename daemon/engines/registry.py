"""Engines by name. Modules import lazily, so a missing extra fails only when chosen."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

from personae.daemon.errors import ConfigError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

Kind = Literal["vad", "stt", "embedder", "llm", "tts"]

# name -> "module:Class"; every class has `from_settings(settings) -> engine`.
ENGINES: dict[Kind, dict[str, str]] = {
    "vad": {"silero": "personae.daemon.engines.vad_silero:SileroVAD"},
    "stt": {"faster-whisper": "personae.daemon.engines.stt_faster_whisper:FasterWhisperSTT"},
    "embedder": {
        "onnx": "personae.daemon.engines.embedder_onnx:OnnxEmbedder",
        "sentence-transformers": "personae.daemon.engines.embedder_st:SentenceTransformerEmbedder",
    },
    "llm": {
        "transformers": "personae.daemon.engines.llm_transformers:TransformersLLM",
        "vllm": "personae.daemon.engines.llm_openai:OpenAIServerLLM",
        "llamacpp": "personae.daemon.engines.llm_llamacpp:LlamaCppLLM",
        "transformers-batched": "personae.daemon.engines.llm_batched:BatchedTransformersLLM",
    },
    "tts": {
        "piper": "personae.daemon.engines.tts_piper:PiperTTS",
        "espeak": "personae.daemon.engines.tts_espeak:EspeakTTS",
    },
}


def available(kind: Kind) -> list[str]:
    return sorted(ENGINES[kind])


def engine_class(kind: Kind, name: str) -> type[Any]:
    try:
        target = ENGINES[kind][name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} engine {name!r}; available: {', '.join(available(kind))}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def create(kind: Kind, name: str, settings: Settings) -> Any:
    return engine_class(kind, name).from_settings(settings)


def register(kind: Kind, name: str, target: str) -> None:
    """Add an engine from outside the package ("my_pkg.tts:MyTTS")."""
    ENGINES[kind][name] = target
