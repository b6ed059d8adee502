"""Lorebook selection with Character Card V2 semantics."""

from __future__ import annotations

from personae.daemon.characters import Character
from personae.daemon.characters import LoreEntry as FileLore
from personae.daemon.runtime.lore import Lorebook, LoreEntry, format_lore


def words(s: str) -> int:
    return len(s.split())


def book(*entries: LoreEntry, **kw) -> Lorebook:
    return Lorebook(entries=entries, **kw)


def test_keys_match_case_insensitively_as_whole_words() -> None:
    b = book(
        LoreEntry(keys=("Silver Key",), content="The silver key opens the crypt."),
        LoreEntry(keys=("ale",), content="Ale is brewed by Tobin."),
    )
    assert [e.content for e in b.active(["where is the SILVER key?"])] == [
        "The silver key opens the crypt."
    ]
    assert b.active(["tell me a tale"]) == []  # "ale" is not a word in "tale"
    sensitive = book(LoreEntry(keys=("Mara",), content="x", case_sensitive=True))
    assert sensitive.active(["mara?"]) == [] and len(sensitive.active(["Mara?"])) == 1


def test_constant_disabled_selective_and_regex_entries() -> None:
    b = book(
        LoreEntry(keys=(), content="The year is 1312.", constant=True),
        LoreEntry(keys=("king",), content="off", enabled=False),
        LoreEntry(
            keys=("king",),
            secondary_keys=("dead", "died"),
            selective=True,
            content="The king died in spring.",
        ),
        LoreEntry(keys=(r"drag(on|ons)\b",), content="Dragons are extinct.", use_regex=True),
    )
    assert format_lore(b.active(["hello"])) == "The year is 1312."
    assert [e.content for e in b.active(["the king lives"])] == ["The year is 1312."]
    assert "The king died in spring." in format_lore(b.active(["is the king dead?"]))
    assert "Dragons are extinct." in format_lore(b.active(["I saw dragons!"]))


def test_only_the_last_scan_depth_messages_are_scanned() -> None:
    b = book(LoreEntry(keys=("mill",), content="The mill burned."), scan_depth=2)
    assert b.active(["the mill?", "hm", "ok"]) == []
    assert len(b.active(["hm", "the mill?", "ok"])) == 1


def test_budget_drops_low_priority_first_and_keeps_insertion_order() -> None:
    b = book(
        LoreEntry(keys=("a",), content="alpha " * 5, insertion_order=3, priority=10),
        LoreEntry(keys=("a",), content="beta " * 5, insertion_order=1, priority=1),
        LoreEntry(keys=("a",), content="gamma " * 5, insertion_order=2, priority=5),
    )
    got = b.select(["a"], count_tokens=words, budget_tokens=10)
    assert [e.content.split()[0] for e in got] == ["gamma", "alpha"]
    everything = b.select(["a"], count_tokens=words)
    assert [e.content.split()[0] for e in everything] == ["beta", "gamma", "alpha"]
    # the book's own token_budget applies too
    small = Lorebook(entries=b.entries, token_budget=5)
    assert [e.priority for e in small.select(["a"], count_tokens=words)] == [10]


def test_recursive_scanning_follows_keys_in_inserted_content() -> None:
    entries = (
        LoreEntry(keys=("crypt",), content="The crypt holds the Lantern."),
        LoreEntry(keys=("lantern",), content="The Lantern is cursed."),
    )
    assert len(book(*entries).active(["the crypt"])) == 1
    assert len(book(*entries, recursive_scanning=True).active(["the crypt"])) == 2


def test_from_card_book_and_from_character() -> None:
    card_book = {
        "scan_depth": 3,
        "token_budget": 50,
        "recursive_scanning": True,
        "extensions": {},
        "entries": [
            {
                "keys": ["key"],
                "content": "@@depth 4\nKeys open doors.",
                "enabled": True,
                "insertion_order": 5,
                "priority": 2,
                "position": "after_char",
                "extensions": {},
            },
            {
                "keys": "gate",
                "content": "Gates close.",
                "enabled": True,
                "insertion_order": "x",
                "extensions": {},
            },
        ],
    }
    b = Lorebook.from_card(card_book)
    assert (b.scan_depth, b.token_budget, b.recursive_scanning) == (3, 50, True)
    first = b.entries[0]
    assert first.text == "Keys open doors." and first.position == "after_char"
    assert b.entries[1].keys == ("gate",) and b.entries[1].insertion_order == 1
    selected = b.select(["key and gate"], count_tokens=words)
    assert format_lore(selected, "after_char") == "Keys open doors."
    assert format_lore(selected, "before_char") == "Gates close."

    ch = Character(
        id="mara",
        name="Mara",
        description="A smith.",
        lore=(FileLore(keys=("forge",), content="The forge is old."),),
    )
    assert [e.content for e in Lorebook.from_character(ch).active(["the Forge"])] == [
        "The forge is old."
    ]
