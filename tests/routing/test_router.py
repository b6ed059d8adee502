"""The router's name index and top-k scores against the plain linear rules, without models."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from personae.daemon.characters import Character
from personae.daemon.routing.common_words import COMMON_WORDS
from personae.daemon.routing.router import (
    _WORD,
    TOP_SCORES,
    Router,
    _edit_distance_at_most_one,
    _name_tokens,
)
from personae.daemon.testing import FakeEmbedder
from personae.daemon.testing.casts import synthetic_cast

LETTERS = "abdeilmnorstu"


def linear_addressed(router: Router, text: str, scene: list[str]) -> str | None:
    """The name scan as it was before the index: every word against every name."""
    chars = router._index.characters
    words = _WORD.findall(text.lower())
    candidates = [
        (tokens, cid) for cid in scene if cid in chars for tokens in _name_tokens(chars[cid])
    ]
    for i in range(len(words)):
        for tokens, cid in candidates:
            if i + len(tokens) > len(words):
                continue
            window = words[i : i + len(tokens)]
            if all(
                w == t
                or (len(t) >= 4 and w not in COMMON_WORDS and _edit_distance_at_most_one(w, t))
                for w, t in zip(window, tokens, strict=True)
            ):
                return cid
    return None


def edit(rng: random.Random, word: str) -> str:
    """One random slip: a substitution, deletion, insertion or swap (sometimes none)."""
    i = rng.randrange(len(word))
    match rng.randrange(5):
        case 0:
            return word[:i] + rng.choice(LETTERS) + word[i + 1 :]
        case 1:
            return word[:i] + word[i + 1 :]
        case 2:
            return word[:i] + rng.choice(LETTERS) + word[i:]
        case 3 if i + 1 < len(word):
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        case _:
            return word


def random_cast(rng: random.Random, n: int) -> dict[str, Character]:
    def word() -> str:
        return "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 6)))

    cast = {}
    for i in range(n):
        name = " ".join(word().capitalize() for _ in range(rng.choice((1, 1, 2))))
        aliases = [word()] if rng.random() < 0.3 else []
        cast[f"c{i}"] = Character(id=f"c{i}", name=name, aliases=aliases, description=f"stall {i}")
    return cast


@pytest.mark.parametrize("seed", range(6))
def test_index_agrees_with_the_linear_scan(seed: int) -> None:
    rng = random.Random(seed)
    cast = random_cast(rng, 60)
    router = Router(embedder=FakeEmbedder(), characters=cast)
    names = [t for ch in cast.values() for n in ch.names for t in _WORD.findall(n.lower())]
    found = 0
    for _ in range(400):
        scene = rng.sample(list(cast), rng.randint(1, 40))
        words = [
            edit(rng, rng.choice(names)) if rng.random() < 0.4 else rng.choice(("hey", "the", "a"))
            for _ in range(rng.randint(1, 6))
        ]
        text = " ".join(words)
        expected = linear_addressed(router, text, scene)
        assert router.addressed(text, scene) == expected, (text, scene)
        found += expected is not None
    assert found > 50  # the random texts do name characters, often at edit distance one


@pytest.mark.parametrize(
    ("word", "token", "match"),
    [
        ("brahm", "bram", True),  # insertion
        ("bam", "bram", True),  # deletion
        ("brim", "bram", True),  # substitution
        ("barm", "bram", False),  # a swap is two edits
        ("brand", "bram", False),
        ("bran", "bra", False),  # short names match exactly only
        ("bra", "bra", True),
    ],
)
def test_edit_distance_rule(word: str, token: str, match: bool) -> None:
    router = Router(
        embedder=FakeEmbedder(), characters={"x": Character(id="x", name=token, description="x")}
    )
    assert (router.addressed(f"well {word} there", ["x"]) == "x") is match


def test_same_words_the_first_in_the_scene_wins() -> None:
    cast = {
        "a": Character(id="a", name="Mara", description="a"),
        "b": Character(id="b", name="Mora", description="b"),
    }
    router = Router(embedder=FakeEmbedder(), characters=cast)
    assert router.addressed("hi mora", ["a", "b"]) == "a"  # 'mora' is one edit from 'mara'
    assert router.addressed("hi mora", ["b", "a"]) == "b"
    assert router.addressed("hi mora", ["a"]) == "a"
    assert router.addressed("hi mora", ["ghost"]) is None


def test_update_adds_and_renames() -> None:
    cast = {"bram": Character(id="bram", name="Bram", description="The smith.")}
    router = Router(embedder=FakeEmbedder(), characters=cast)
    router.update(Character(id="tessa", name="Tessa Vale", description="The herbalist."))
    assert router.route("Tessa, any herbs?", ["bram", "tessa"]).character == "tessa"
    router.update(Character(id="bram", name="Bramwell", description="The smith."))
    assert router.addressed("hey bram", ["bram", "tessa"]) is None
    assert router.addressed("hey bramwell", ["bram", "tessa"]) == "bram"
    assert router.addressed("hey tessa", ["bram", "tessa"]) == "tessa"


def test_update_while_routing_never_shows_half_an_index() -> None:
    everyone = synthetic_cast(150, seed=4)
    ids = list(everyone)
    scene = ids[:50]
    router = Router(embedder=FakeEmbedder(), characters={c: everyone[c] for c in scene})
    errors: list[BaseException] = []

    def add() -> None:
        for cid in ids[50:]:
            router.update(everyone[cid])

    def route() -> None:
        try:
            for i in range(300):
                cid = scene[i % 50]
                assert router.route(f"hey {everyone[cid].name}", scene).character == cid
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add), threading.Thread(target=route)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert router.addressed(f"hi {everyone[ids[-1]].name}", ids) == ids[-1]


def test_scores_are_the_top_k_best_first() -> None:
    cast = {
        f"c{i}": Character(id=f"c{i}", name=f"N{i}", description=f"word{i} " * (i % 5 + 1))
        for i in range(30)
    }
    router = Router(embedder=FakeEmbedder(), characters=cast)
    scene = list(cast)
    decision = router.route("word3 word13 word23", scene)
    assert decision.reason == "similarity"
    assert len(decision.scores) == TOP_SCORES
    values = list(decision.scores.values())
    assert values == sorted(values, reverse=True)
    assert decision.character == next(iter(decision.scores))
    # the reported scores are the highest of all: compare with every character's
    full = router.scores("word3 word13 word23", scene, top=len(scene))
    assert len(full) == len(scene)
    assert values == sorted(full.values(), reverse=True)[:TOP_SCORES]
    assert np.isclose(max(full.values()), values[0])


def test_a_handoff_takes_an_unnamed_line_but_not_a_named_one() -> None:
    from personae.daemon.characters import default_cast_dir, load_cast

    router = Router(embedder=FakeEmbedder(), characters=load_cast([default_cast_dir()]))
    scene = ["bram", "mara", "wren"]
    forge = "What about the forge, the anvil and the iron tools?"
    assert router.route(forge, scene, last_speaker="bram").character == "bram"
    handed = router.route(forge, scene, last_speaker="bram", handoff="mara")
    assert (handed.character, handed.reason) == ("mara", "handoff")
    assert set(handed.scores) == set(scene)  # the scores still say who was closest
    named = router.route("Wren, the forge?", scene, last_speaker="bram", handoff="mara")
    assert (named.character, named.reason) == ("wren", "addressed")
    pinned = router.route(forge, scene, pinned="bram", handoff="mara")
    assert pinned.character == "bram"
    # a hand-off to someone who has left the scene is ignored
    gone = router.route(forge, ["bram", "wren"], last_speaker="bram", handoff="mara")
    assert gone.reason != "handoff"
