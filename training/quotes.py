"""Finding quoted speech in a paragraph, in the common conventions.

- straight double quotes  "Iron," said Bram.
- curly double quotes     “Iron,” said Bram.
- British single quotes   ‘Iron,’ said Bram.   (curly; apostrophes are told apart)
- straight single quotes  'Iron,' said Bram.   (top level only in paragraphs with no double quotes)
- dash-introduced lines   — Iron, said Bram. Good iron.

Only top-level quotes are found: a quotation inside speech stays part of the speech,
whichever marks nest (‘The “G” with the small “t”…’ is one speech), and a plural
possessive inside single-quoted speech (‘at their wits’ end’) does not close it. A short
quote inside a narrative sentence (“stray “magnifiques,””) is a mention, not speech.
A quote left open at the end of a paragraph continues in the next paragraph when that
one opens with a quote mark (the usual multi-paragraph speech convention).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DASHES = ("—", "–", "―")


@dataclass(frozen=True, slots=True)
class Quote:
    #: offsets in the paragraph: `start` is the opening mark, `end` is past the closing mark
    start: int
    end: int
    text: str
    #: the quote was left open at the paragraph's end
    open_ended: bool = False


_OPEN_BEFORE = set(" \t\n([{—–-\"“‘'")
_CLOSE_BEFORE = re.compile(r"[\w.,!?;:…—–\-)”\"]")


def _single_opens(para: str, i: int) -> bool:
    """A single mark opens a quote at the paragraph start or after a space, bracket, dash
    or another mark, and before a letter or punctuation (so `’tis` and `don’t` do not)."""
    before = para[i - 1] if i else " "
    after = para[i + 1] if i + 1 < len(para) else ""
    return before in _OPEN_BEFORE and bool(after) and (after.isalnum() or after in '¡¿…—-“"')


def _single_closes(para: str, i: int, mark: str) -> bool:
    """A single mark closes after a letter or punctuation and before a non-letter; `wits’ end`
    (a plural possessive: `s’` then a lower-case word) is an apostrophe when the quote closes
    later in the paragraph."""
    before = para[i - 1] if i else ""
    after = para[i + 1] if i + 1 < len(para) else ""
    if not before or not _CLOSE_BEFORE.match(before) or after.isalnum():
        return False
    if before in "sS" and re.match(r"\s[a-z]", para[i + 1 : i + 3]):
        return not any(_single_closes_plain(para, j) for j in _all(para, mark, i + 1))
    return True


def _single_closes_plain(para: str, i: int) -> bool:
    before = para[i - 1]
    after = para[i + 1] if i + 1 < len(para) else ""
    return (
        bool(_CLOSE_BEFORE.match(before))
        and not after.isalnum()
        and not (before in "sS" and re.match(r"\s[a-z]", para[i + 1 : i + 3]))
    )


def _all(para: str, mark: str, start: int) -> list[int]:
    return [j for j in range(start, len(para)) if para[j] == mark]


def _scan(para: str) -> list[Quote]:
    """Top-level quotes, reading the marks as a stack: a quotation nested inside speech
    (singles inside doubles, or doubles inside British singles) stays part of it."""
    straight_singles = '"' not in para and "“" not in para and "‘" not in para
    stack: list[str] = []
    quotes: list[Quote] = []
    top_start = 0
    for i, ch in enumerate(para):
        kind = None  # "open:<mark>" | "close:<mark>"
        if ch == "“":
            kind = "open"
        elif ch == "”":
            kind = "close" if "“" in stack else None
        elif ch == '"':
            kind = "close" if '"' in stack else "open"
        elif ch == "‘":
            kind = "open" if _single_opens(para, i) else None
        elif ch == "’":
            kind = "close" if "‘" in stack and _single_closes(para, i, "’") else None
        elif ch == "'":
            if "'" in stack and _single_closes(para, i, "'"):
                kind = "close"
            elif (stack or straight_singles) and _single_opens(para, i):
                kind = "open"
        if kind == "open":
            if not stack:
                top_start = i
            stack.append({"”": "“", "’": "‘"}.get(ch, ch))
        elif kind == "close":
            opener = {"”": "“", "’": "‘"}.get(ch, ch)
            while stack and stack.pop() != opener:
                pass
            if not stack:
                quotes.append(Quote(top_start, i + 1, para[top_start + 1 : i].strip()))
    if stack:
        quotes.append(Quote(top_start, len(para), para[top_start + 1 :].strip(), open_ended=True))
    return quotes


def _mentions(para: str, quotes: list[Quote]) -> set[int]:
    """Short quotes inside a narrative sentence (`with stray “magnifiques,” “coup-de-maîtres,”
    and “tours-de-force,”`) name words; nobody says them. Returns their indices."""
    out: set[int] = set()
    for k, q in enumerate(quotes):
        if len(q.text.split()) > 3 or q.open_ended:
            continue
        before = para[quotes[k - 1].end if k else 0 : q.start]
        after_mention = k - 1 in out and re.fullmatch(r"[\s,;]*(?:and\s+|or\s+)?", before)
        if after_mention or re.search(r"[a-z]\s+$", para[: q.start]):
            out.add(k)
    return out


def find_quotes(para: str) -> list[Quote]:
    """Top-level quotes of one paragraph, in order. Dash lines are handled by the caller."""
    quotes = _scan(para)
    skip = _mentions(para, quotes)
    return [q for k, q in enumerate(quotes) if q.text and k not in skip]


def is_dash_line(para: str) -> bool:
    return para.startswith(DASHES) and len(para) > 2 and para[1] in " \u2009\u00a0"
