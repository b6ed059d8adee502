"""Routing among 1,000 characters picks the one the player names."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from personae.daemon.characters import Character
from personae.daemon.session.router import Router
from tests.perf.routing_cast import ProfileVectors, synthetic_cast

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def embedder(settings):
    from personae.daemon.engines.embedder_st import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder.from_settings(settings)


def test_addressed_character_wins_among_a_thousand(embedder):
    cast = synthetic_cast(999, seed=1)
    target = Character(id="mara", name="Mara Quill", description="The town archivist.")
    cast[target.id] = target
    router = Router(embedder=ProfileVectors(embedder, seed=2), characters=cast)
    scene = list(cast)
    random.Random(3).shuffle(scene)
    started = time.perf_counter()
    decision = router.route("Hey Mara, where can I find an old map of the river?", scene)
    elapsed = time.perf_counter() - started
    assert (decision.character, decision.reason) == ("mara", "addressed")
    assert len(decision.scores) == 1000
    assert np.isfinite(list(decision.scores.values())).all()
    assert elapsed < 5.0  # a generous bound on a loaded machine; bench/routing.py measures
