"""Synthetic casts for routing at scale (tests/perf and bench/routing.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from personae.daemon.characters import Character
from personae.daemon.engines.base import Embedder

_ONSETS = ["b", "d", "f", "g", "k", "l", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "n", "r", "l", "th", "x"]


def synthetic_cast(n: int, *, seed: int = 0) -> dict[str, Character]:
    """`n` characters with distinct three-syllable names (seven letters or more, so no
    name is within one edit of a common English word or of another name's stem)."""
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        name = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(3)
        )
        if len(name) >= 7:
            names.add(name)
    return {
        f"c{i:05d}": Character(
            id=f"c{i:05d}",
            name=name.capitalize(),
            description=f"{name.capitalize()} keeps stall {i} in the market.",
        )
        for i, name in enumerate(sorted(names))
    }


class ProfileVectors(Embedder):
    """The real embedder for utterances, random unit vectors for a batch of profiles.

    Embedding thousands of profiles takes minutes on a small CPU and says nothing about
    routing latency, which only embeds the utterance; profiles are embedded once.
    """

    name = "profile-vectors"

    def __init__(self, real: Embedder, *, seed: int = 0) -> None:
        self._real = real
        self._rng = np.random.default_rng(seed)
        self._dims = real.embed(["dimension probe"]).shape[1]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:
            return self._real.embed(texts)
        vectors = self._rng.standard_normal((len(texts), self._dims)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
