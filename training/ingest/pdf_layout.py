"""PDF paragraphs from the page layout. pypdf's plain text has line breaks but no
paragraph marks, so two speakers' lines in a row ran together; its layout mode keeps
where each line starts (as leading spaces) and the vertical gaps (as blank lines):

- a line indented past the left margin starts a paragraph (book typesetting);
- a gap (a blank line) starts one (block paragraphs, headings);
- only where a page uses neither does a short line ending a sentence end one.

Each page's first body line carries a mark saying whether it starts a paragraph or
continues the last page's (`PAGE_STARTS` / `PAGE_CONTINUES`), which cleaning reads
when it joins pages after removing running headers and page numbers.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

PAGE_STARTS = "\x1d"
PAGE_CONTINUES = "\x1e"
_END = re.compile(r"[.!?:\"”’'—]$")


def _lead(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def layout_page(page: Any) -> str | None:
    """The page's text with a blank line between paragraphs, or None without layout."""
    try:
        raw = page.extract_text(extraction_mode="layout")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    lines = raw.replace("\t", "    ").splitlines()
    text_lines = [ln for ln in lines if ln.strip()]
    if not text_lines:
        return ""
    leads = Counter(_lead(ln) for ln in text_lines)
    # the left margin: the smallest indentation that many lines share
    common = [n for n, c in leads.items() if c >= max(2, 0.2 * len(text_lines))]
    margin = min(common) if common else min(leads)
    indented = [ln for ln in text_lines if 0 < _lead(ln) - margin <= 12]
    blank_between = any(
        not lines[i].strip() and lines[i - 1].strip() and lines[i + 1].strip()
        for i in range(1, len(lines) - 1)
    )
    by_layout = bool(indented) or blank_between or len(text_lines) < 4
    full = sorted(len(ln.strip()) for ln in text_lines)[max(0, int(len(text_lines) * 0.9) - 1)]

    out: list[str] = []
    marked = False
    gap = True
    previous = ""
    for ln in lines:
        if not ln.strip():
            gap = True
            continue
        text = ln.strip()
        lead = _lead(ln) - margin
        if by_layout:
            starts = gap or lead > 0
        else:
            starts = len(previous) < 0.75 * full and bool(_END.search(previous))
        if not marked and lead <= 12 and not _number(text):
            marked = True  # the first body line: not a centred running header, not a number
            text = (PAGE_STARTS if 0 < lead <= 12 else PAGE_CONTINUES) + text
        if starts and out:
            out.append("")
        out.append(text)
        previous, gap = text, False
    return "\n".join(out)


def _number(text: str) -> bool:
    return bool(re.fullmatch(r"\s*[-–(\[]?\s*\d{1,4}\s*[-–)\]]?\s*", text))
