"""Finding quoted speech in a paragraph, in the common conventions.

- straight double quotes  "Iron," said Bram.
- curly double quotes     “Iron,” said Bram.
- British single quotes   ‘Iron,’ said Bram.   (curly; apostrophes are told apart)
- straight single quotes  'Iron,' said Bram.   (only in paragraphs with no double quotes)
- dash-introduced lines   — Iron, said Bram. Good iron.

Only top-level quotes are found: a quotation inside speech stays part of the speech.
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


def _pairs(para: str, opener: str, closer: str | None) -> list[Quote]:
    """Quotes delimited by distinct (or, with closer=None, identical) marks."""
    quotes: list[Quote] = []
    i = 0
    while True:
        a = para.find(opener, i)
        if a < 0:
            return quotes
        b = para.find(closer or opener, a + 1)
        if b < 0:
            quotes.append(Quote(a, len(para), para[a + 1 :].strip(), open_ended=True))
            return quotes
        quotes.append(Quote(a, b + 1, para[a + 1 : b].strip()))
        i = b + 1


def _single(para: str, opener: str, closer: str) -> list[Quote]:
    """Single quotes, where the closing mark is also the apostrophe.

    An opening mark follows the paragraph start, a space or an opening bracket/dash and
    precedes a letter; a closing mark follows a letter or punctuation and is followed by
    a space, punctuation or the end (so `don’t` and `Toby’s` are apostrophes).
    """
    quotes: list[Quote] = []
    open_re = re.compile(rf"(?:^|(?<=[\s(\[—–]))[{re.escape(opener)}](?=[\w¡¿…—-])")
    close_re = re.compile(rf"(?<=[\w.,!?;:…—-])[{re.escape(closer)}](?![\w])")
    i = 0
    while True:
        m = open_re.search(para, i)
        if not m:
            return quotes
        c = close_re.search(para, m.end())
        if not c:
            quotes.append(Quote(m.start(), len(para), para[m.end() :].strip(), open_ended=True))
            return quotes
        quotes.append(Quote(m.start(), c.end(), para[m.end() : c.start()].strip()))
        i = c.end()


def find_quotes(para: str) -> list[Quote]:
    """Top-level quotes of one paragraph, in order. Dash lines are handled by the caller."""
    found: list[Quote] = []
    if "“" in para or "”" in para:
        found += _pairs(para, "“", "”")
    if '"' in para:
        found += _pairs(para, '"', None)
    if not found:
        if "‘" in para:
            found += _single(para, "‘", "’")
        elif "'" in para:
            found += _single(para, "'", "'")
    # drop quotes nested in an earlier one (mixed marks), keep order
    found.sort(key=lambda q: q.start)
    top: list[Quote] = []
    for q in found:
        if top and q.start < top[-1].end:
            continue
        if q.text:
            top.append(q)
    return top


def is_dash_line(para: str) -> bool:
    return para.startswith(DASHES) and len(para) > 2 and para[1] in " \u2009\u00a0"
