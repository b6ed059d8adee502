"""Screenplay reader: `NAME: line` dialogue, scene headings, stage directions.

- `# ...` is a comment; a blank line separates nothing in particular.
- A scene heading is a line starting with `INT.`, `EXT.`, `INT./EXT.` or `SCENE` in capitals.
- A stage direction is a whole line in parentheses; it may run over several lines
  until the closing parenthesis.
- Dialogue is `NAME: line` with NAME in capitals, optionally `NAME (parenthetical): line`.
- A non-blank line that is none of these continues the dialogue line above it (writers
  wrap long speeches); anywhere else it is an error naming the file and the line.
"""

from __future__ import annotations

import re
from pathlib import Path

from personae.training.ingest.readers import _read_text
from personae.training.ingest.scenes import PLAYER, Scene, ScriptLine, malformed

HEADING = re.compile(r"^(INT\./EXT\.|INT\.|EXT\.|SCENE\b)")
SPEECH = re.compile(r"^([A-Z][A-Z0-9 .'\-]*?)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
LOWER_SPEAKER = re.compile(r"^([A-Z][a-z][\w'\-]*(?: [A-Z][a-z][\w'\-]*)?)\s*(?:\([^)]*\))?\s*:")


def parse_script(text: str, path: Path | str = "<script>") -> list[Scene]:
    source = Path(path).name
    scenes: list[Scene] = []
    scene: Scene | None = None
    in_direction: int | None = None  # line where an open parenthesis started
    last_speech = False  # may the next plain line continue a speech?

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if in_direction is not None:
            if ")" in line:
                in_direction = None
            continue
        if not line or line.startswith("#"):
            last_speech = last_speech and bool(line)
            continue
        if HEADING.match(line):
            scene = Scene(source, line, n)
            scenes.append(scene)
            last_speech = False
            continue
        if line.startswith("("):
            if not line.endswith(")"):
                in_direction = n
            last_speech = False
            continue
        m = SPEECH.match(line)
        if m:
            name, note, said = m.group(1).strip(), (m.group(2) or "").strip(), m.group(3).strip()
            if not said:
                raise malformed(path, n, "speaker with no line", raw)
            if scene is None:  # dialogue before any heading: an untitled first scene
                scene = Scene(source, "(untitled)", n)
                scenes.append(scene)
            speaker = name.lower()
            speaker = PLAYER if speaker == PLAYER else speaker
            reply_to = len(scene.lines) - 1 if scene.lines else None
            scene.lines.append(ScriptLine(speaker, said, n, reply_to, note))
            last_speech = True
            continue
        if LOWER_SPEAKER.match(line):
            raise malformed(path, n, "speaker names are written in capitals (NAME: line)", raw)
        if last_speech and scene is not None and scene.lines:
            prev = scene.lines[-1]
            scene.lines[-1] = ScriptLine(
                prev.speaker, f"{prev.text} {line}", prev.line_no, prev.reply_to, prev.note
            )
            continue
        raise malformed(path, n, "not a scene heading, stage direction (...) or NAME: line", raw)
    if in_direction is not None:
        raise malformed(path, in_direction, "stage direction never closed with ')'", "(")
    return scenes


def read_script(path: Path) -> list[Scene]:
    return parse_script(_read_text(Path(path)), path)
