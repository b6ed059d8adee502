"""`python -m tests.production.serve`: the daemon's own `personae serve`, with stand-ins.

Tests of the OpenAI API, the vLLM engine and replicas start real daemon processes but
exercise only their LLM, HTTP routes and database. This launcher registers fast
engines under the name `fake` (VAD, STT, embedder, TTS: the deterministic ones from
`personae.daemon.testing`) and an LLM `echo` that answers with the system prompt it
was given, then runs the real `serve` command: so `PERSONAE_STT_ENGINE=fake` starts in
seconds, and `PERSONAE_LLM_ENGINE=echo` shows what reached a character's prompt;
`PERSONAE_TEST_FAKE_TTS=1` lets the fake speak for the cast's piper and espeak voices.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

from personae.daemon.engines import registry
from personae.daemon.engines.base import GenerationRequest, LLMEngine
from personae.daemon.session.prompt import system_text
from personae.daemon.testing import FakeEmbedder, FakeSTT, FakeTTS, FakeVAD


class _FromSettings:
    @classmethod
    def from_settings(cls, settings: object) -> _FromSettings:
        return cls()


class VAD(_FromSettings, FakeVAD):
    pass


class STT(_FromSettings, FakeSTT):
    pass


class Embedder(_FromSettings, FakeEmbedder):
    pass


class TTS(_FromSettings, FakeTTS):
    pass


class EchoLLM(_FromSettings, LLMEngine):
    """Answers with the system prompt: what the character was told, memory included."""

    name = "echo"
    # the default cast wears adapters: accept them (the echo reads no weights)
    supports_adapters = True

    def __init__(self) -> None:
        self.adapters: dict[str, str] = {}

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        yield system_text(request.messages)

    def load_adapter(self, name: str, path: str) -> None:
        self.adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        self.adapters.pop(name)


def main() -> None:
    here = __name__ if __name__ != "__main__" else "tests.production.serve"
    for kind, cls in (("vad", "VAD"), ("stt", "STT"), ("embedder", "Embedder"), ("tts", "TTS")):
        registry.register(kind, "fake", f"{here}:{cls}")  # type: ignore[arg-type]
    registry.register("llm", "echo", f"{here}:EchoLLM")
    if os.environ.get("PERSONAE_TEST_FAKE_TTS") == "1":
        # the default cast's voices (piper, espeak) spoken by the fake, for fast starts
        for name in ("piper", "espeak"):
            registry.register("tts", name, f"{here}:TTS")
    from personae.sdk.cli import main as cli

    sys.argv = ["personae", "serve"]
    cli()


if __name__ == "__main__":
    main()
