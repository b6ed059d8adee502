"""Turning one request's logits into tokens and its tokens into text deltas.

Shared by the transformers engines: the same logits processors, in the same order, as
transformers' `generate()` builds, a per-request RNG (a seed reproduces a reply
whatever else runs in the process), and stop strings that are never yielded.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from personae.daemon.characters import GenerationParams


class Sampler:
    """Picks the next token of one request."""

    def __init__(self, params: GenerationParams, seed: int | None = None) -> None:
        self.temperature = params.temperature
        self._processors = logits_processors(params)
        self._rng = torch.Generator().manual_seed(
            seed if seed is not None else random.getrandbits(63)
        )

    def pick(self, ids: torch.Tensor, logits: torch.Tensor) -> int:
        """The next token after `ids` ([1, tokens] so far) given its logits ([1, vocab])."""
        scores = self._processors(ids, logits)
        if self.temperature == 0:
            return int(scores[0].argmax())
        probs = torch.softmax(scores[0], dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._rng))


def logits_processors(params: GenerationParams) -> Any:
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    # the same processors, in the same order, as generate() builds for these settings
    procs = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature > 0:
        if params.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
    return procs


class ReplyText:
    """A reply's generated tokens, and the text deltas they add (stop strings cut)."""

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str]) -> None:
        self.tokens: list[int] = []
        self._decode = decode
        self._stops = StopScanner(stops)

    def append(self, token: int) -> tuple[str, bool]:
        """(delta to emit, whether a stop string was reached) once `token` is added."""
        self.tokens.append(token)
        text = self._decode(self.tokens)
        if text.endswith("\ufffd"):
            return "", False  # a multi-byte character is split across tokens: wait for the rest
        return self._stops.feed(text)

    def flush(self) -> str:
        """The held-back rest, once generation ended without completing a stop string."""
        return self._stops.flush()


class StopScanner:
    """Turns the growing decoded text into deltas that never contain a stop string.

    Text that could be the start of a stop string is held back until the next tokens
    show whether it is one.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._text = ""
        self._sent = 0

    def feed(self, text: str) -> tuple[str, bool]:
        """(delta to emit, whether a stop string was reached) for the text so far."""
        self._text = text
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            return self._emit(min(hits)), True
        hold = max((_overlap(text, s) for s in self._stops), default=0)
        return self._emit(len(text) - hold), False

    def flush(self) -> str:
        """The held-back rest, once generation ended without completing a stop string."""
        return self._emit(len(self._text))

    def _emit(self, end: int) -> str:
        delta = self._text[self._sent : end] if end > self._sent else ""
        self._sent = max(self._sent, end)
        return delta


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper start of `stop`."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0
