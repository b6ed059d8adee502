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
from personae.training.ingest.pdf_layout import PAGE_CONTINUES, PAGE_STARTS

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
# the markers may wrap anywhere: "*** START OF THE PROJECT GUTENBERG EBOOK THE ADVENTURES
# OF SHERLOCK\nHOLMES ***"
_GUTENBERG_START = re.compile(
    r"^\s*\*{3}\s*START\s+OF\s+(?:THE|THIS)\s+PROJECT\s+GUTENBERG[^*]{0,300}\*{3}", re.I | re.M
)
_GUTENBERG_END = re.compile(
    r"^\s*\*{3}\s*END\s+OF\s+(?:THE|THIS)\s+PROJECT\s+GUTENBERG", re.I | re.M
)
# older e-texts: "*END*THE SMALL PRINT! ..." closes the header, "End of the Project
# Gutenberg EBook of ..." starts the licence
_GUTENBERG_SMALL_PRINT = re.compile(r"^\s*\*END\*\s*THE SMALL PRINT[^\n]*\n", re.I | re.M)
_GUTENBERG_END_PLAIN = re.compile(
    r"^\s*End\s+of\s+(?:the\s+)?Project\s+Gutenberg(?:'s)?\s", re.I | re.M
)
_LIGATURES = {"ﬁ": "fi", "ﬂ": "fl", "ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl", "\u00ad": "", "\u00a0": " "}


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for k, v in _LIGATURES.items():
        text = text.replace(k, v)
    return unicodedata.normalize("NFC", text)


def _strip_gutenberg(text: str, report: dict | None = None) -> str:
    start = _GUTENBERG_START.search(text) or _GUTENBERG_SMALL_PRINT.search(text)
    removed = {"header_chars": 0, "licence_chars": 0}
    if start:
        removed["header_chars"] = start.end()
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text) or _GUTENBERG_END_PLAIN.search(text)
    if end:
        removed["licence_chars"] = len(text) - end.start()
        text = text[: end.start()]
    if report is not None:
        report["gutenberg"] = removed
    return text


def _header_key(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def _strip_page_furniture(pages: list[str], report: dict | None = None) -> list[str]:
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
    numbers: list[str] = []
    headers: Counter[str] = Counter()
    for lines in split:
        content_idx = [i for i, ln in enumerate(lines) if ln.strip()]
        edge_idx = set(content_idx[:2] + content_idx[-2:])
        kept = []
        for i, ln in enumerate(lines):
            if ln.strip() and _PAGE_NUMBER.match(ln) and (i in edge_idx or len(pages) == 1):
                numbers.append(ln.strip())
                continue
            if i in edge_idx and _header_key(ln) in running and not ln.lstrip().startswith("#"):
                headers[ln.strip()] += 1
                continue
            kept.append(ln)
        out.append("\n".join(kept))
    if report is not None:
        report["page_numbers"] = len(numbers)
        report["running_headers"] = dict(headers.most_common(10))
    return out


def _join_pages(pages: list[str]) -> str:
    """A paragraph running over a page break continues on the next page. A reader that
    knows (the PDF layout) marks whether the page's first body line starts a paragraph;
    otherwise a page starts one after a line that ends a sentence."""
    text = ""
    for page in pages:
        page = page.strip("\n")
        starts = PAGE_STARTS in page
        continues = PAGE_CONTINUES in page
        page = page.replace(PAGE_STARTS, "").replace(PAGE_CONTINUES, "")
        if not text:
            text = page
        elif continues and not page.lstrip().startswith("#"):
            text += "\n" + page
        elif starts or re.search(r"[.!?\"”’'—:]\s*$", text) or page.lstrip().startswith("#"):
            text += "\n\n" + page
        else:
            text += "\n" + page
    return text


def _reflow(paragraph: str) -> str:
    # hyphenation across line ends: "black-\nsmith" -> "blacksmith"; keep "-\nThe" (a dash)
    paragraph = re.sub(r"(\w)-\n\s*([a-z])", r"\1\2", paragraph)
    return re.sub(r"\s*\n\s*", " ", paragraph).strip()


def _title_lines(lines: list[str]) -> int:
    """How many lines after a heading line belong to its title ("Chapter I" then "The
    Science of Deduction"): up to two short lines when nothing else is in the block."""
    rest = lines[1:]
    if 0 < len(rest) <= 2 and all(
        len(ln.strip()) < 70 and not _SENTENCE_END.search(ln) for ln in rest
    ):
        return len(rest)
    return 0


_SENTENCE_END = re.compile(r"[.!?,;:\"”’]\s*$")


def clean_text(raw: str, report: dict | None = None) -> str:
    """Cleaned text; `report`, when given, receives what was removed and the paragraph
    count, so a bad file is visible before training."""
    text = _strip_gutenberg(_normalise(raw), report)
    pages = text.split("\f")
    if len(pages) > 1 or any(_PAGE_NUMBER.match(ln) for ln in text.split("\n") if ln.strip()):
        pages = _strip_page_furniture(pages, report)
    text = _join_pages(pages)
    # boilerplate lines (a copyright line, an ISBN) go before lines are joined
    boiler = [ln for ln in text.split("\n") if len(ln) < 200 and _BOILERPLATE.search(ln)]
    text = "\n".join(
        ln for ln in text.split("\n") if not (len(ln) < 200 and _BOILERPLATE.search(ln))
    )
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n") if ln.strip()]
        # only a block's first line can be a heading: a wrapped line ("said\nI.") never is
        if lines and (lines[0].lstrip().startswith("#") or is_heading(lines[0])):
            n = _title_lines(lines)
            title = " ".join(ln.strip() for ln in lines[: n + 1]).lstrip("# ").strip()
            paragraphs.append("# " + title)
            lines = lines[n + 1 :]
        if lines:
            paragraphs.append(_reflow("\n".join(lines)))
    dropped = [p for p in paragraphs if p and len(p) < 400 and _BOILERPLATE.search(p)]
    paragraphs = [p for p in paragraphs if p and not (len(p) < 400 and _BOILERPLATE.search(p))]
    if report is not None:
        report["boilerplate_lines"] = len(boiler) + len(dropped)
        report["paragraphs"] = sum(1 for p in paragraphs if not p.startswith("# "))
        report["headings"] = sum(1 for p in paragraphs if p.startswith("# "))
    return "\n\n".join(paragraphs) + ("\n" if paragraphs else "")
