"""Lorebooks: entries inserted into the prompt when their keys come up in conversation.

Semantics follow the Character Card V2 `character_book` (and V3's additions):

- an entry is active when it is `enabled` and either `constant` or one of its `keys`
  appears in the last `scan_depth` messages; a `selective` entry also needs one of its
  `secondary_keys`;
- keys match case-insensitively unless `case_sensitive`, as whole words (so "ale"
  does not fire on "tale"; a key that starts or ends with a non-word character
  matches as a plain substring); with V3 `use_regex` a key is a regular expression;
- with `recursive_scanning`, the content of active entries is scanned too (bounded);
- over the `token_budget`, entries with lower `priority` are dropped first (ties: the
  constant ones stay, then the lower `insertion_order`);
- the kept entries are inserted in ascending `insertion_order`, grouped by
  `position` ("before_char" or "after_char" the character description).

V3 decorators (content lines starting with "@@") are not interpreted; they are kept in
the stored card and stripped from the inserted text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from personae.daemon.characters import Character

CountTokens = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about four characters a token) for prompt budgets."""
    return max(1, (len(text) + 3) // 4)


POSITIONS = ("before_char", "after_char")
_MAX_RECURSION = 3


@dataclass(frozen=True, slots=True)
class LoreEntry:
    keys: tuple[str, ...]
    content: str
    secondary_keys: tuple[str, ...] = ()
    selective: bool = False
    constant: bool = False
    enabled: bool = True
    insertion_order: int = 0
    #: kept over the budget before lower values
    priority: int = 0
    case_sensitive: bool = False
    use_regex: bool = False
    position: str = "before_char"
    name: str = ""
    id: int | str | None = None
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _secondary: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            object.__setattr__(self, "position", "before_char")
        object.__setattr__(self, "_patterns", self._compile(self.keys))
        object.__setattr__(self, "_secondary", self._compile(self.secondary_keys))

    def _compile(self, keys: Iterable[str]) -> tuple[re.Pattern[str], ...]:
        flags = 0 if self.case_sensitive else re.IGNORECASE
        out = []
        for key in keys:
            if not key.strip():
                continue
            if self.use_regex:
                try:
                    out.append(re.compile(key, flags))
                except re.error as exc:
                    raise ValueError(f"lore key {key!r} is not a valid regex: {exc}") from exc
                continue
            body = re.escape(key.strip())
            left = r"(?<!\w)" if re.match(r"\w", key.strip()) else ""
            right = r"(?!\w)" if re.search(r"\w$", key.strip()) else ""
            out.append(re.compile(left + body + right, flags))
        return tuple(out)

    def matches(self, text: str) -> bool:
        if not any(p.search(text) for p in self._patterns):
            return False
        if self.selective and self.secondary_keys:
            return any(p.search(text) for p in self._secondary)
        return True

    @property
    def text(self) -> str:
        """The content as inserted: V3 decorator lines removed."""
        lines = [ln for ln in self.content.splitlines() if not ln.lstrip().startswith("@@")]
        return "\n".join(lines).strip()


@dataclass(frozen=True, slots=True)
class Lorebook:
    entries: tuple[LoreEntry, ...] = ()
    #: how many recent messages are scanned for keys
    scan_depth: int = 4
    #: tokens for all inserted entries; None: only the caller's budget applies
    token_budget: int | None = None
    recursive_scanning: bool = False
    name: str = ""

    @classmethod
    def from_character(cls, character: Character, **options: Any) -> Lorebook:
        """The character file's lore: keyed entries, in file order."""
        entries = tuple(
            LoreEntry(keys=e.keys, content=e.content, priority=e.priority, insertion_order=i, id=i)
            for i, e in enumerate(character.lore)
        )
        return cls(entries=entries, **options)

    @classmethod
    def from_card(cls, book: Mapping[str, Any], *, scan_depth: int = 4) -> Lorebook:
        """A Card V2/V3 `character_book` object (raises ValueError when malformed)."""
        raw = book.get("entries", [])
        if not isinstance(raw, list):
            raise ValueError("character_book.entries must be a list")
        entries = []
        for i, e in enumerate(raw):
            if not isinstance(e, Mapping):
                raise ValueError(f"character_book.entries[{i}] must be an object")
            keys = e.get("keys", [])
            if isinstance(keys, str):
                keys = [keys]
            secondary = e.get("secondary_keys") or []
            if isinstance(secondary, str):
                secondary = [secondary]
            entries.append(
                LoreEntry(
                    keys=tuple(str(k) for k in keys),
                    content=str(e.get("content", "")),
                    secondary_keys=tuple(str(k) for k in secondary),
                    selective=bool(e.get("selective", False)),
                    constant=bool(e.get("constant", False)),
                    enabled=bool(e.get("enabled", True)),
                    insertion_order=_int(e.get("insertion_order"), i),
                    priority=_int(e.get("priority"), 0),
                    case_sensitive=bool(e.get("case_sensitive", False)),
                    use_regex=bool(e.get("use_regex", False)),
                    position=str(e.get("position") or "before_char"),
                    name=str(e.get("name") or e.get("comment") or ""),
                    id=e.get("id", i),
                )
            )
        depth = _int(book.get("scan_depth"), scan_depth)
        budget = book.get("token_budget")
        return cls(
            entries=tuple(entries),
            scan_depth=max(1, depth),
            token_budget=_int(budget, 0) or None if budget is not None else None,
            recursive_scanning=bool(book.get("recursive_scanning", False)),
            name=str(book.get("name") or ""),
        )

    def active(self, messages: Sequence[str]) -> list[LoreEntry]:
        """Entries whose keys appear in the last `scan_depth` messages (or constant)."""
        window = "\n".join(messages[-self.scan_depth :]) if self.scan_depth else ""
        chosen: list[LoreEntry] = []
        seen: set[int] = set()
        for i, e in enumerate(self.entries):
            if e.enabled and (e.constant or e.matches(window)):
                chosen.append(e)
                seen.add(i)
        rounds = _MAX_RECURSION if self.recursive_scanning else 0
        frontier = [e.text for e in chosen if not e.constant]
        while rounds and frontier:
            rounds -= 1
            text = "\n".join(frontier)
            frontier = []
            for i, e in enumerate(self.entries):
                if i not in seen and e.enabled and e.matches(text):
                    chosen.append(e)
                    seen.add(i)
                    frontier.append(e.text)
        return chosen

    def select(
        self,
        messages: Sequence[str],
        *,
        count_tokens: CountTokens,
        budget_tokens: int | None = None,
    ) -> list[LoreEntry]:
        """Active entries that fit the budget, in insertion order."""
        limits = [b for b in (budget_tokens, self.token_budget) if b is not None]
        budget = min(limits) if limits else None
        active = self.active(messages)
        ranked = sorted(active, key=lambda e: (-e.priority, not e.constant, e.insertion_order))
        kept: list[LoreEntry] = []
        used = 0
        for e in ranked:
            cost = count_tokens(e.text)
            if budget is not None and used + cost > budget:
                continue
            used += cost
            kept.append(e)
        return sorted(kept, key=lambda e: (e.insertion_order, self.entries.index(e)))


def format_lore(entries: Sequence[LoreEntry], position: str | None = None) -> str:
    """The prompt block for selected entries (optionally only one `position`)."""
    return "\n\n".join(
        e.text for e in entries if e.text and (position is None or e.position == position)
    )


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def lore_for(
    character: Character,
    lines: Sequence[str],
    *,
    budget_tokens: int,
    count_tokens: CountTokens = estimate_tokens,
) -> list[str]:
    """The lore blocks a prompt of `character` gets for the conversation `lines`
    (before_char, then after_char), as the daemon selects them; no mood or memories.
    The evaluation and the training dataset use it to see what a player's prompt holds."""
    if budget_tokens <= 0 or not character.lore:
        return []
    chosen = Lorebook.from_character(character).select(
        lines, count_tokens=count_tokens, budget_tokens=budget_tokens
    )
    return [b for b in (format_lore(chosen, "before_char"), format_lore(chosen, "after_char")) if b]
