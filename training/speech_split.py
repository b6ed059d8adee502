"""Long speeches into trainable pieces at sentence boundaries.

A detective's deductions run to a page; dropping every reply over the length limits
dropped exactly the lines that make the character. Instead a long reply is packed,
sentence by sentence, into pieces that fit; a single sentence too long on its own is
cut at its clause marks (; : — ,) and only what still does not fit is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# a sentence ends at . ! ? … (and any closing quotes/brackets) before a space and a
# capital or an opening quote; "Mr." and "St." do not end one
_ABBREV = r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bMt\.)(?<!\b[A-Z]\.)"
_SENTENCE_END = re.compile(rf"(?<=[.!?…]){_ABBREV}[\"”’')\]]*\s+(?=[\"“‘'(\[]?[A-Z0-9])")
_CLAUSE_END = re.compile(r"(?<=[;:—,])\s+")


def sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        out.append(text[start : m.start() + len(m.group(0).rstrip())].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _pack(parts: list[str], fits: Callable[[str], bool]) -> list[str] | None:
    pieces: list[str] = []
    for part in parts:
        if pieces and fits(pieces[-1] + " " + part):
            pieces[-1] += " " + part
        elif fits(part):
            pieces.append(part)
        else:
            return None
    return pieces


def split_speech(text: str, fits: Callable[[str], bool]) -> tuple[list[str], int]:
    """(pieces that fit, number of sentences dropped because even their clauses do not)."""
    if fits(text):
        return [text], 0
    pieces: list[str] = []
    dropped = 0
    for sentence in sentences(text):
        if fits(sentence):
            if pieces and fits(pieces[-1] + " " + sentence):
                pieces[-1] += " " + sentence
            else:
                pieces.append(sentence)
            continue
        clauses = _pack([c for c in _CLAUSE_END.split(sentence) if c], fits)
        if clauses is None:
            dropped += 1
            continue
        pieces.extend(clauses)
    return pieces, dropped
