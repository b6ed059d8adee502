"""Engines by name. Modules import lazily, so a missing extra fails only when chosen."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

from personae.daemon.errors import ConfigError, missing_extra

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
        "kokoro": "personae.daemon.engines.tts_kokoro:KokoroTTS",
    },
}

#: the extra that installs what an engine imports, where personae[daemon] does not
#: (tests/packaging checks every engine's imports against it)
EXTRAS: dict[Kind, dict[str, str]] = {
    "llm": {"llamacpp": "llamacpp"},
    "tts": {"piper": "piper", "kokoro": "kokoro"},
}


def extra(kind: Kind, name: str) -> str:
    """The extra to install for engine `name`: pip install 'personae[<extra>]'."""
    return EXTRAS.get(kind, {}).get(name, "daemon")


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
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # a package the engine's extra installs (not a module of its own package)
        missing = (exc.name or "").partition(".")[0]
        if missing in ("", "personae", module.partition(".")[0]):
            raise
        raise missing_extra(missing, extra(kind, name)) from exc
    return getattr(loaded, cls)


def create(kind: Kind, name: str, settings: Settings) -> Any:
    return engine_class(kind, name).from_settings(settings)


def register(kind: Kind, name: str, target: str, *, extra: str | None = None) -> None:
    """Add an engine from outside the package ("my_pkg.tts:MyTTS")."""
    ENGINES[kind][name] = target
    if extra is not None:
        EXTRAS.setdefault(kind, {})[name] = extra
