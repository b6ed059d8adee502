"""Routing among 1,000 characters picks the one the player names, with the default embedder."""

from __future__ import annotations

import random

import numpy as np
import pytest

from personae.daemon.characters import Character
from personae.daemon.engines import registry
from personae.daemon.routing import router as router_module
from personae.daemon.routing.router import TOP_SCORES, Router
from personae.daemon.testing.casts import ProfileVectors, synthetic_cast

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
    decision = router.route("Hey Mara, where can I find an old map of the river?", scene)
    assert (decision.character, decision.reason) == ("mara", "addressed")
    assert len(decision.scores) == TOP_SCORES  # the closest, not all 1,000
    values = list(decision.scores.values())
    assert np.isfinite(values).all() and values == sorted(values, reverse=True)


def test_misspelt_name_found_among_a_thousand(thousand):
    router, scene = thousand
    name = router._index.characters[scene[500]].name.lower()
    misspelt = name[:3] + name[4:]  # speech recognition dropped a letter
    assert router.route(f"Excuse me {misspelt}, a word?", scene).character == scene[500]


class CountedProfiles(ProfileVectors):
    """ProfileVectors that count the texts of each embedding call."""

    def __init__(self, real, *, seed: int) -> None:
        super().__init__(real, seed=seed)
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        return super().embed(texts)


def test_a_turns_work_does_not_grow_with_the_scene(embedder, monkeypatch):
    """A turn among 10,000 does the work of one among 100: it embeds the utterance alone,
    and the name scan compares the words only with the names it looks up by them. The
    time it takes is measured by `personae bench routing` (without the embedding)."""
    text = "Where can I find an old map of the river, Mara?"
    comparisons = 0
    compare = router_module._word_matches

    def counted(word: str, token: str) -> bool:
        nonlocal comparisons
        comparisons += 1
        return compare(word, token)

    monkeypatch.setattr(router_module, "_word_matches", counted)
    work = {}
    for size in (100, 10_000):
        cast = synthetic_cast(size - 1, seed=size)
        cast["mara"] = Character(id="mara", name="Mara Quill", description="The archivist.")
        profiles = CountedProfiles(embedder, seed=size)
        router = Router(embedder=profiles, characters=cast)
        profiles.calls.clear()  # the cast's profiles, embedded once
        comparisons = 0
        assert router.route(text, list(cast)).character == "mara"
        work[size] = (profiles.calls, comparisons)
    assert work[100][0] == work[10_000][0] == [1]  # the utterance, once
    assert work[10_000][1] == work[100][1] > 0, work  # the same names compared
