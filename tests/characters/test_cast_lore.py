"""The default cast's lorebooks: shape, budget, and that a player's question finds the facts.

The sample lines are written here for these tests (not taken from the evaluation set);
each names a job or topic the way a player would, and the entry it should bring into
the prompt must carry the price or fact from the Hollowmere lore bible.
"""

from __future__ import annotations

import pytest

from personae.daemon.characters import Character, default_cast_dir, load_cast
from personae.daemon.runtime.lore import Lorebook
from personae.daemon.runtime.lore import estimate_tokens as count_tokens
from personae.daemon.settings import Settings

BUDGET = Settings.model_fields["lore_budget_tokens"].default
#: words so common that a key made of one would fire on nearly every line
TOO_COMMON = {
    "the",
    "a",
    "an",
    "and",
    "or",
    "is",
    "are",
    "you",
    "your",
    "i",
    "me",
    "it",
    "town",
    "what",
    "who",
    "where",
    "how",
    "do",
    "does",
    "can",
    "of",
    "to",
    "in",
    "on",
    "at",
}


@pytest.fixture(scope="module")
def cast() -> dict[str, Character]:
    return load_cast([default_cast_dir()])


def selected(character: Character, *lines: str) -> list[str]:
    book = Lorebook.from_character(character)
    return [
        e.text for e in book.select(list(lines), count_tokens=count_tokens, budget_tokens=BUDGET)
    ]


@pytest.mark.parametrize("cid", ["bram", "mara", "wren"])
def test_every_entry_is_short_keyed_and_specific(cast, cid) -> None:
    lore = cast[cid].lore
    assert 20 <= len(lore) <= 35
    for entry in lore:
        assert len(entry.keys) >= 2, entry.content
        assert count_tokens(entry.content) <= 45, entry.content
        assert not {k.lower() for k in entry.keys} & TOO_COMMON, entry.keys
    # the character's trade is what matters most when the budget is tight
    assert max(e.priority for e in lore) > min(e.priority for e in lore)


# (player line, a phrase the selected lore must contain): every price in the bible's lists
TRADE = {
    "bram": [
        ("My scythe won't cut any more, can you sharpen it?", "two coppers"),
        ("I need four new horseshoes for my mare.", "eight coppers"),
        ("The hinge on my shutter broke, can you make a new one?", "hinge costs four coppers"),
        ("My kettle is cracked and leaks.", "three coppers"),
        ("Dunstan wants another barrel hoop.", "barrel hoop costs three coppers"),
        ("This blade is bent, can you straighten it?", "six coppers"),
        ("What would a new knife cost me?", "three silver"),
        ("I need a new axe head.", "four silver"),
        ("Could you re-handle my hammer?", "three coppers"),
        ("My gate latch snapped off.", "latch five coppers"),
        ("Will you forge me a sword?", "not make a sword for a stranger"),
        ("Can you make shackles for a prisoner?", "will not make manacles"),
        ("Can I pay you now, before you start?", "when the work is done"),
        ("My old spade needs a new edge.", "spade, four coppers"),
        ("Could you mend my pocket watch?", "clockmaker in Carrowby"),
    ],
    "mara": [
        ("How much is a search for my grandfather's birth?", "two coppers"),
        ("I need a certified copy of a deed.", "three coppers"),
        ("Could I get a copy of the survey map?", "one silver"),
        ("When does the archive open?", "nine in the morning until four"),
        ("Can I take this ledger home?", "Nothing leaves the archive room"),
        ("Can you read this record to me? I never learned to read.", "reads aloud for free"),
        ("Who drew the survey?", "Edith Quill"),
        ("May I read my uncle's sealed will?", "sealed wills"),
    ],
    "wren": [
        ("How much to run a letter across the square?", "across the square one copper"),
        ("Take this note over the bridge for me.", "across the bridge two"),
        ("I need a parcel up to the church on the hill.", "new church on the hill two"),
        ("Can you run something out to the osier beds?", "osier beds three"),
        ("Will you take a message to the mill tonight?", "five coppers by day"),
        ("What will a good rumour cost me?", "a pie or two coppers"),
        ("I need a letter sent to Carrowby.", "four coppers"),
        ("Will you carry this crate of apples?", "heavier than a cat"),
    ],
}


@pytest.mark.parametrize(
    ("cid", "line", "fact"), [(c, line, fact) for c, cases in TRADE.items() for line, fact in cases]
)
def test_a_question_about_the_trade_brings_its_price(cast, cid, line, fact) -> None:
    assert any(fact in text for text in selected(cast[cid], line)), selected(cast[cid], line)


def test_a_crowded_line_fits_the_budget_and_keeps_the_central_entries(cast) -> None:
    line = (
        "Tell me about the mill fire, the green lights, the bell, the Marrow Pit, the fen, "
        "Nell's inn, Reeve Pike, your father and the forge, and how much to sharpen an axe."
    )
    bram = cast["bram"]
    book = Lorebook.from_character(bram)
    active = book.active([line])
    kept = book.select([line], count_tokens=count_tokens, budget_tokens=BUDGET)
    assert sum(count_tokens(e.text) for e in active) > BUDGET  # the budget has work to do
    assert sum(count_tokens(e.text) for e in kept) <= BUDGET
    dropped = set(active) - set(kept)
    assert dropped and max(e.priority for e in dropped) <= min(e.priority for e in kept)
    assert any("two coppers" in e.text for e in kept)  # the trade outranks the gossip


@pytest.mark.parametrize(
    ("cid", "line", "fact"),
    [
        ("bram", "Have you heard of the railway?", "never been past Carrowby"),
        ("mara", "What is the biggest city in the world?", "no record"),
        (
            "wren",
            "Have you been to the capital, seen the King?",
            "never been further than Carrowby",
        ),
        ("mara", "Who cut the page out of the deed register?", "does not know who cut it out"),
        ("wren", "Who was the man in the grey coat?", "doesn't know who he is"),
    ],
)
def test_what_a_character_does_not_know_is_said_too(cast, cid, line, fact) -> None:
    assert any(fact in text for text in selected(cast[cid], line))


def test_small_talk_brings_no_lore(cast) -> None:
    for character in cast.values():
        assert selected(character, "Hello there, nice to meet you.") == []


def test_file_priority_reaches_the_lorebook(cast) -> None:
    bram = cast["bram"]
    book = Lorebook.from_character(bram)
    assert [e.priority for e in book.entries] == [e.priority for e in bram.lore]


def test_a_cards_priority_comes_in_and_goes_back_out(cast) -> None:
    from personae.daemon.runtime.cards.lorebook import lore_from_book, merge_book

    book = {
        "entries": [
            {"keys": ["forge"], "content": "The forge is hot.", "priority": 7, "extensions": {}},
            {"keys": ["mill"], "content": "The mill burned.", "extensions": {}},
        ]
    }
    _, lore = lore_from_book(book)
    assert [e.priority for e in lore] == [7, 0]
    changed = cast["bram"].model_copy(
        update={"lore": (lore[0].model_copy(update={"priority": 3}), lore[1])}
    )
    merged = merge_book(book, changed)
    assert [e.get("priority", 0) for e in merged["entries"]] == [3, 0]
    assert merged["entries"][0]["extensions"] == {}  # the rest of the card entry is kept
