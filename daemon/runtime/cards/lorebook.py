"""A card's `character_book` ↔ our lore.

Only enabled, keyed, non-regex entries with text become a character's lore; the
`Lorebook` keeps every entry with all its Card options.
"""

from __future__ import annotations

from typing import Any

from personae.daemon.characters import Character
from personae.daemon.characters import LoreEntry as CharacterLore
from personae.daemon.runtime.errors import CardError
from personae.daemon.runtime.lore import Lorebook, LoreEntry


def lore_from_book(book: Any) -> tuple[Lorebook, tuple[CharacterLore, ...]]:
    """The card's full lorebook, and the character lore made from it."""
    try:
        lorebook = Lorebook.from_card(book) if isinstance(book, dict) else Lorebook()
    except ValueError as exc:
        raise CardError(f"character_book: {exc}") from exc
    lore = tuple(
        CharacterLore(keys=e.keys, content=e.text, priority=e.priority)
        for e in lorebook.entries
        if _becomes_lore(e)
    )
    return lorebook, lore


def merge_book(book: Any, character: Character) -> dict[str, Any] | None:
    """The card's lorebook updated to the character's lore.

    Entries that import turned into lore are kept (with all their options) when the
    character still has them, dropped when it does not; new lore becomes new entries.
    Entries import did not turn into lore (disabled, regex, keyless) stay as they were.
    """
    old = book.get("entries", []) if isinstance(book, dict) else []
    old = old if isinstance(old, list) else []
    try:
        parsed = Lorebook.from_card({"entries": old}).entries
    except ValueError:
        parsed = ()
    mapped: dict[tuple[tuple[str, ...], str], Any] = {}
    others = []
    for raw, entry in zip(old, parsed, strict=False):
        if _becomes_lore(entry):
            mapped.setdefault((entry.keys, entry.text), raw)
        else:
            others.append(raw)
    entries = []
    for i, lore in enumerate(character.lore):
        raw = mapped.get((lore.keys, lore.content))
        if raw is not None and _int_or_zero(raw.get("priority")) != lore.priority:
            raw = {**raw, "priority": lore.priority}  # the character file's priority wins
        entries.append(
            raw
            if raw is not None
            else {
                "keys": list(lore.keys),
                "content": lore.content,
                "priority": lore.priority,
                "extensions": {},
                "enabled": True,
                "insertion_order": i,
                "id": i,
            }
        )
    entries += others
    if not entries:
        return None
    out = dict(book) if isinstance(book, dict) else {"extensions": {}}
    out["entries"] = entries
    return out


def _becomes_lore(entry: LoreEntry) -> bool:
    return bool(entry.enabled and entry.keys and not entry.use_regex and entry.text)


def _int_or_zero(value: Any) -> int:
    try:
        return int(value) if not isinstance(value, bool) else 0
    except (TypeError, ValueError):
        return 0
