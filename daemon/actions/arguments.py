"""Arguments taken from the player's words, never invented.

A 135M model cannot be trusted to write JSON, so each declared parameter is read from
the line by rule: an enum value (or one of its `x-aliases`) named in the line, a number
written in digits or words. A parameter the line does not settle (not named, or two
candidates) is left out, and the schema then says what is missing: the character asks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_UNITS = {
    "a": None,  # "a sword" is not a number
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip

NUMBER_WORDS = frozenset({*(k for k in _UNITS if k != "a"), *_TENS, "hundred"})


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace(",", ""))


def numbers(text: str) -> list[float]:
    """Every number in the line: "20", "12.5", "twenty five", "a hundred", "two hundred"."""
    found: list[float] = []
    current: float | None = None
    for w in [*words(text), ""]:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", w):
            if current is not None:
                found.append(current)
            found.append(float(w))
            current = None
        elif _UNITS.get(w) is not None:
            unit = float(_UNITS[w])  # type: ignore[arg-type]
            if current is not None and current % 100 >= 20 and current % 10 == 0 and unit < 10:
                current += unit  # "twenty" "five"
            else:
                if current is not None:
                    found.append(current)
                current = unit
        elif w in _TENS:
            if current is not None and current >= 100 and current % 100 == 0:
                current += _TENS[w]
            else:
                if current is not None:
                    found.append(current)
                current = float(_TENS[w])
        elif w == "hundred":
            current = (current or 1.0) * 100
        elif w == "and" and current is not None and current >= 100:
            continue
        else:
            if current is not None:
                found.append(current)
            current = None
    return found


def _mentions(text_words: list[str], phrase: str) -> bool:
    target = words(phrase)
    if not target:
        return False
    n = len(target)
    for i in range(len(text_words) - n + 1):
        window = text_words[i : i + n]
        if window[:-1] == target[:-1] and window[-1] in _forms(target[-1]):
            return True
    return False


def _forms(word: str) -> set[str]:
    """A word and its plural: "sword" also matches "swords", "knife" "knives"."""
    forms = {word, word + "s", word + "es"}
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    return forms


def extract(schema: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The arguments `text` settles for `schema`'s properties; unsettled ones left out."""
    text_words = words(text)
    found: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        value = _one(prop, text, text_words)
        if value is not None:
            found[name] = value
    return found


def _one(prop: Mapping[str, Any], text: str, text_words: list[str]) -> Any:
    kind = prop["type"]
    enum = prop.get("enum")
    if enum is not None:
        aliases: Mapping[str, list[str]] = prop.get("x-aliases", {})
        hits = [
            v for v in enum if any(_mentions(text_words, str(p)) for p in [v, *aliases.get(v, [])])
        ]
        return hits[0] if len(hits) == 1 else None  # two named: ambiguous, ask
    if kind in ("integer", "number"):
        nums = numbers(text)
        if kind == "integer":
            nums = [n for n in nums if n.is_integer()]
        distinct = sorted(set(nums))
        if len(distinct) != 1:
            return None
        return int(distinct[0]) if kind == "integer" else distinct[0]
    return None  # booleans and free text are never guessed from words
