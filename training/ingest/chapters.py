"""Chapter splitting. A chapter starts at a `# ` heading or a line such as "Chapter 3",
"CHAPTER IV", "Part Two", or a lone Roman numeral."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    "fifteen|sixteen|seventeen|eighteen|nineteen|twenty"
)
_HEADING = re.compile(
    rf"^(?:#\s*(?P<md>.+)|(?P<word>(?:chapter|part|book)\s+(?:\d+|[ivxlcdm]+|{_NUMBER_WORDS})\b.{{0,80}})|"
    r"(?P<roman>[IVXLC]{1,6}\.?))$",
    re.IGNORECASE,
)


def is_heading(line: str) -> bool:
    line = line.strip()
    return len(line) < 100 and bool(_HEADING.match(line))


@dataclass(frozen=True, slots=True)
class Chapter:
    source: str
    index: int
    title: str
    text: str
    #: character offset of the chapter's text in the cleaned source
    offset: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Chapter:
        return cls(**d)


def split_chapters(text: str, *, source: str) -> list[Chapter]:
    chapters: list[Chapter] = []
    title, body_start = "(opening)", 0
    offset = 0
    for para in text.split("\n\n"):
        m = _HEADING.match(para.strip()) if is_heading(para) else None
        if m:
            body = text[body_start:offset].strip()
            if body:
                chapters.append(Chapter(source, len(chapters), title, body, body_start))
            title = (m.group("md") or m.group("word") or m.group("roman")).strip()
            body_start = offset + len(para) + 2
        offset += len(para) + 2
    body = text[body_start:].strip()
    if body:
        chapters.append(Chapter(source, len(chapters), title, body, body_start))
    return chapters
