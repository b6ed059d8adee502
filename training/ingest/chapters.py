"""Chapter splitting. A chapter starts at a `# ` heading or a line such as "Chapter 3",
"CHAPTER IV", "Part Two", a lone Roman numeral, or a story title in capitals ("I. A
SCANDAL IN BOHEMIA"). Cleaning makes headings `# ` lines, only ever from a block's first
line, so a wrapped line of prose does not become one."""

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
# a story's title in a collection: "I. A SCANDAL IN BOHEMIA", "ADVENTURE II. THE RED-HEADED
# LEAGUE", or a short line all in capitals ("THE SIGN OF THE FOUR")
_TITLE = re.compile(
    r"^(?:(?:ADVENTURE|STORY)\s+)?(?:[IVXLC]{1,6}\.\s+)?(?P<title>[A-Z][A-Z0-9’'&,:\- ]*[A-Z0-9])$"
)


_ROMAN_ONLY = re.compile(r"^[IVXLC]{1,6}\.?$")


def is_heading(line: str) -> bool:
    line = line.strip()
    if len(line) >= 100:
        return False
    if _HEADING.match(line):
        return True
    m = _TITLE.match(line)
    return bool(m) and len(m.group("title").split()) >= 2 and len(line) <= 60


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
    story = ""  # the title of the story a collection is in, for its numbered parts
    offset = 0
    for para in text.split("\n\n"):
        m = _HEADING.match(para.strip()) if is_heading(para) else None
        if m:
            body = text[body_start:offset].strip()
            if body:
                chapters.append(Chapter(source, len(chapters), title, body, body_start))
            new = (m.group("md") or m.group("word") or m.group("roman")).strip()
            if _ROMAN_ONLY.match(new) and story:
                # a numbered part of a story in a collection: "A SCANDAL IN BOHEMIA, II."
                title = f"{story}, {new}"
            else:
                title = new
                word = _HEADING.match(new)
                if word and (word.group("word") or word.group("roman")):
                    story = ""  # "Chapter 4": numbered chapters, not a collection
                elif _TITLE.match(new):
                    story = new
            body_start = offset + len(para) + 2
        offset += len(para) + 2
    body = text[body_start:].strip()
    if body:
        chapters.append(Chapter(source, len(chapters), title, body, body_start))
    return chapters
