"""Run every engine once at start-up, so the first player does not pay for lazy init."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from personae.daemon.engines.base import INPUT_SAMPLE_RATE, GenerationRequest
from personae.daemon.models import Progress, no_progress
from personae.daemon.session.prompt import build_messages

if TYPE_CHECKING:
    from personae.daemon.service import Service


def warm_up(service: Service, progress: Progress = no_progress) -> None:
    e = service.engines
    # one voice per TTS engine the cast uses; an engine nobody speaks with stays cold
    voices = {}
    for ch in service.cast.values():
        voices.setdefault(ch.voice.engine, ch.voice)
    steps = 4 + len(voices)
    progress("warm-up", 0, steps)
    stream = e.vad.stream()
    stream.probability(np.zeros(stream.frame_samples, dtype=np.float32))
    progress("warm-up", 1, steps)
    rng = np.random.default_rng(0)
    e.stt.transcribe((0.01 * rng.standard_normal(INPUT_SAMPLE_RATE)).astype(np.float32))
    progress("warm-up", 2, steps)
    e.embedder.embed(["hello"])
    progress("warm-up", 3, steps)
    e.llm.warmup()
    prime_characters(service)
    progress("warm-up", 4, steps)
    for i, (name, voice) in enumerate(voices.items()):
        for _ in e.tts[name].synthesize("Hello.", voice):
            pass
        progress("warm-up", 5 + i, steps)


def prime_characters(service: Service) -> None:
    """Prefill each character's static prompt with its adapter, for the LLM to reuse."""
    for ch in service.cast.values():
        adapter = service.adapters.acquire(ch)
        try:
            messages = build_messages(ch, [])
            service.engines.llm.prime(
                GenerationRequest(messages=messages, params=ch.generation, adapter=adapter)
            )
        finally:
            service.adapters.release(adapter)
