"""Routing among 1,000 characters picks the one the player names, with the default embedder."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from personae.daemon.characters import Character
from personae.daemon.engines import registry
from personae.daemon.routing.router import TOP_SCORES, Router
from tests.perf.routing_cast import ProfileVectors, synthetic_cast

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def embedder(settings):
    return registry.create("embedder", settings.embedder_engine, settings)


@pytest.fixture(scope="module")
def thousand(embedder):
    cast = synthetic_cast(999, seed=1)
    target = Character(id="mara", name="Mara Quill", description="The town archivist.")
    cast[target.id] = target
    scene = list(cast)
    random.Random(3).shuffle(scene)
    return Router(embedder=ProfileVectors(embedder, seed=2), characters=cast), scene


def test_addressed_character_wins_among_a_thousand(thousand):
    router, scene = thousand
    started = time.perf_counter()
    decision = router.route("Hey Mara, where can I find an old map of the river?", scene)
    elapsed = time.perf_counter() - started
    assert (decision.character, decision.reason) == ("mara", "addressed")
    assert len(decision.scores) == TOP_SCORES  # the closest, not all 1,000
    values = list(decision.scores.values())
    assert np.isfinite(values).all() and values == sorted(values, reverse=True)
    assert elapsed < 5.0  # a generous bound on a loaded machine; bench/routing.py measures


def test_misspelt_name_found_among_a_thousand(thousand):
    router, scene = thousand
    name = router._index.characters[scene[500]].name.lower()
    misspelt = name[:3] + name[4:]  # speech recognition dropped a letter
    assert router.route(f"Excuse me {misspelt}, a word?", scene).character == scene[500]


def test_routing_without_the_embedding_does_not_grow_with_the_scene(embedder):
    """With the utterance's vector at hand, a turn among 10,000 costs about what one
    among 100 does: the name scan looks up the words, the scores are one product."""
    text = "Where can I find an old map of the river?"
    vector = embedder.embed([text])

    class Cached(ProfileVectors):
        def embed(self, texts):
            return vector if len(texts) == 1 else super().embed(texts)

    per_turn = {}
    for size in (100, 10_000):
        cast = synthetic_cast(size, seed=size)
        router = Router(embedder=Cached(embedder, seed=size), characters=cast)
        scene = list(cast)
        router.route(text, scene)
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            router.route(text, scene)
            samples.append(time.perf_counter() - started)
        per_turn[size] = sorted(samples)[len(samples) // 2]
    # 100x the characters; the linear scan was ~70x slower. Loose: the machine is shared
    assert per_turn[10_000] < 20 * per_turn[100] + 0.002, per_turn
