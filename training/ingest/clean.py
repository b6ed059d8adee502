"""Cleaning: what printing adds to a text and a reader never hears.

Page numbers, running headers and footers (lines repeated on many pages), publisher
boilerplate (copyright pages, e-text licences), hyphenation across line ends, hard
line wrapping. Output: paragraphs separated by one blank line; `# ` headings kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from personae.training.ingest.chapters import is_heading

_PAGE_NUMBER = re.compile(
    r"^\s*(?:page\s+)?[-–—(\[]?\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*[-–—)\]]?\s*(?:of\s+\d+)?\s*$",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(
    r"all rights reserved|^isbn[\s:-]|\bisbn(?:-1[03])?[:\s]+[\dx-]{10,}|copyright\s*(?:©|\(c\)|\d{4})|"
    r"^©|no part of this (?:publication|book)|printed (?:and bound )?in (?:the )?[A-Z]|"
    r"this is a work of fiction|first published (?:in|by)|www\.\w|"
    r"project gutenberg|^\s*\*{3}\s*(?:start|end) of",
    re.IGNORECASE,
)
_GUTENBERG_START = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M
)
_GUTENBERG_END = re.compile(r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG", re.I | re.M)
_LIGATURES = {"ﬁ": "fi", "ﬂ": "fl", "ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl", "\u00ad": "", "\u00a0": " "}


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for k, v in _LIGATURES.items():
        text = text.replace(k, v)
    return unicodedata.normalize("NFC", text)


def _strip_gutenberg(text: str) -> str:
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text


def _header_key(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def _strip_page_furniture(pages: list[str]) -> list[str]:
    """Drop page-number lines, and lines repeated at the top or bottom of many pages."""
    edges: Counter[str] = Counter()
    split = [p.split("\n") for p in pages]
    for lines in split:
        content = [ln for ln in lines if ln.strip()]
        for ln in set(content[:2] + content[-2:]):
            edges[_header_key(ln)] += 1
    threshold = max(2, int(0.3 * len(pages) + 0.5))
    running = {k for k, n in edges.items() if n >= threshold and len(pages) >= 2}
    out = []
    for lines in split:
        content_idx = [i for i, ln in enumerate(lines) if ln.strip()]
        edge_idx = set(content_idx[:2] + content_idx[-2:])
        kept = []
        for i, ln in enumerate(lines):
            if ln.strip() and _PAGE_NUMBER.match(ln) and (i in edge_idx or len(pages) == 1):
                continue
            if i in edge_idx and _header_key(ln) in running and not ln.lstrip().startswith("#"):
                continue
            kept.append(ln)
        out.append("\n".join(kept))
    return out


def _join_pages(pages: list[str]) -> str:
    """A paragraph running over a page break continues on the next page."""
    text = ""
    for page in pages:
        page = page.strip("\n")
        if not text:
            text = page
        elif re.search(r"[.!?\"”’'—:]\s*$", text) or page.lstrip().startswith("#"):
            text += "\n\n" + page
        else:
            text += "\n" + page
    return text


def _reflow(paragraph: str) -> str:
    # hyphenation across line ends: "black-\nsmith" -> "blacksmith"; keep "-\nThe" (a dash)
    paragraph = re.sub(r"(\w)-\n\s*([a-z])", r"\1\2", paragraph)
    return re.sub(r"\s*\n\s*", " ", paragraph).strip()


def clean_text(raw: str) -> str:
    text = _strip_gutenberg(_normalise(raw))
    pages = text.split("\f")
    if len(pages) > 1 or any(_PAGE_NUMBER.match(ln) for ln in text.split("\n") if ln.strip()):
        pages = _strip_page_furniture(pages)
    text = _join_pages(pages)
    # boilerplate lines (a copyright line, an ISBN) go before lines are joined
    text = "\n".join(
        ln for ln in text.split("\n") if not (len(ln) < 200 and _BOILERPLATE.search(ln))
    )
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        # a heading line inside a block starts its own paragraph
        buf: list[str] = []
        for ln in lines:
            if ln.lstrip().startswith("#") or is_heading(ln):
                if buf:
                    paragraphs.append(_reflow("\n".join(buf)))
                    buf = []
                paragraphs.append("# " + ln.lstrip("# ").strip())
            else:
                buf.append(ln)
        if buf:
            paragraphs.append(_reflow("\n".join(buf)))
    paragraphs = [p for p in paragraphs if p and not (len(p) < 400 and _BOILERPLATE.search(p))]
    return "\n\n".join(paragraphs) + ("\n" if paragraphs else "")
