"""Dialogue with explicit speakers (screenplays, Yarn Spinner): scenes of lines.

Prose goes through chapters and speaker attribution; a script names every speaker, so
its readers return `Scene`s and nothing is guessed. Each line records the line it answers
(`reply_to`): the line before in a screenplay, the option or line above it in a Yarn
branch, so the dialogue strategy can pair a character's line with its prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personae.training.errors import SourceError

#: the speaker name of the player's own lines (screenplay `PLAYER:`, Yarn `-> option`)
PLAYER = "player"


@dataclass(frozen=True)
class ScriptLine:
    speaker: str  # lower-case name as written ("bram", "player")
    text: str
    line_no: int  # 1-based line in the source file
    reply_to: int | None = None  # index in the scene of the line this one answers
    note: str = ""  # a parenthetical ("through the door")


@dataclass
class Scene:
    source: str
    title: str
    line_no: int
    lines: list[ScriptLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(d["source"], d["title"], d["line_no"], [ScriptLine(**x) for x in d["lines"]])


def malformed(path: Path | str, line_no: int, why: str, line: str) -> SourceError:
    return SourceError(f"{path}:{line_no}: {why}: {line.strip()[:80]!r}")


def read_scenes(path: Path) -> list[Scene]:
    """The scenes of a .script or .yarn file; SourceError naming file and line if malformed."""
    from personae.training.ingest.script import read_script
    from personae.training.ingest.yarn import read_yarn

    readers: dict[str, Callable[[Path], list[Scene]]] = {".script": read_script, ".yarn": read_yarn}
    path = Path(path)
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"{path}: not a script file ({', '.join(readers)})")
    if not path.is_file():
        raise SourceError(f"{path}: source file not found")
    scenes = [s for s in reader(path) if s.lines]
    if not scenes:
        raise SourceError(f"{path}: no dialogue lines found")
    return scenes


def scenes_to_text(scenes: list[Scene]) -> str:
    """Plain text of the scenes (`# title`, then `Name: line` paragraphs), for previews."""
    out = []
    for s in scenes:
        out.append(f"# {s.title}")
        out += [f"{ln.speaker.title()}: {ln.text}" for ln in s.lines]
    return "\n\n".join(out)
