"""Yarn Spinner 2 reader: nodes of `title:` headers, `---`, body, `===`.

In a body: `Name: text` is a character line; `-> text` is a player option whose
indented lines (replies and nested options) follow it; `<<command>>` lines and
`[[jumps]]` are control flow, not speech; `//` starts a comment; `#line:id` and other
`#tags` at the end of a line are metadata; a line without a speaker is narration.
Each line answers the line before it in its own branch, or the option that opens the
branch, so a reply is never paired with a sibling option's text.
"""

from __future__ import annotations

import re
from pathlib import Path

from personae.training.ingest.readers import _read_text
from personae.training.ingest.scenes import PLAYER, Scene, ScriptLine, malformed

HEADER = re.compile(r"^([A-Za-z_][\w]*)\s*:\s*(.*)$")
SPEECH = re.compile(r"^([A-Z][\w'\-]*(?: [A-Z][\w'\-]*)?)\s*:\s*(.*)$")
TAGS = re.compile(r"(?:\s+#[\w:\-]+)+\s*$")
JUMP = re.compile(r"\[\[[^\]]*\]\]")


def _strip(line: str) -> str:
    """Drop a `//` comment (not inside a URL-like `://`), trailing hashtags and jumps."""
    line = re.sub(r"(?<!:)//.*$", "", line)
    line = TAGS.sub("", line)
    return JUMP.sub("", line).strip()


def _indent(raw: str) -> int:
    return len(raw.expandtabs(4)) - len(raw.expandtabs(4).lstrip())


def parse_yarn(text: str, path: Path | str = "<yarn>") -> list[Scene]:
    source = Path(path).name
    lines = text.splitlines()
    scenes: list[Scene] = []
    n = 0
    while n < len(lines):
        raw = lines[n]
        if not _strip(raw):
            n += 1
            continue
        # --- headers up to `---`
        headers: dict[str, str] = {}
        start = n + 1
        while n < len(lines) and lines[n].strip() != "---":
            h = _strip(lines[n])
            if h == "===":
                raise malformed(path, n + 1, "node ended with === before its --- line", lines[n])
            if h:
                m = HEADER.match(h)
                if not m:
                    raise malformed(
                        path, n + 1, "expected a `key: value` node header or ---", lines[n]
                    )
                headers[m.group(1).lower()] = m.group(2).strip()
            n += 1
        if n >= len(lines):
            raise malformed(path, start, "node header without a `---` line to start the body", raw)
        if not headers.get("title"):
            raise malformed(path, start, "node without a `title:` header", raw)
        scene = Scene(source, headers["title"], start)
        n += 1
        # --- body up to `===`; stack of (indent, index of the line that a line here
        # answers, whether that line is an option)
        stack: list[tuple[int, int | None, bool]] = [(-1, None, False)]
        closed = False
        while n < len(lines):
            raw = lines[n]
            n += 1
            if raw.strip() == "===":
                closed = True
                break
            if raw.strip() == "---":
                raise malformed(path, n, "`---` inside a node body (missing `===` before it?)", raw)
            body = _strip(raw)
            if not body:
                continue
            if body.startswith("<<"):
                if not body.endswith(">>"):
                    raise malformed(path, n, "command not closed with >>", raw)
                continue
            is_option = body.startswith("->")
            m = None if is_option else SPEECH.match(body)
            if not is_option and not (m and m.group(2).strip()):
                continue  # narration: the next line still answers the last one spoken
            ind = _indent(raw)
            while stack[-1][0] > ind:
                stack.pop()
            if stack[-1][0] == ind and stack[-1][2]:
                stack.pop()  # a sibling option, or the line after an option group
            if is_option:
                option = re.sub(r"<<[^>]*>>", "", body[2:]).strip()  # `-> text <<if $x>>`
                if not option:
                    raise malformed(path, n, "empty option", raw)
                scene.lines.append(ScriptLine(PLAYER, option, n, stack[-1][1]))
            else:
                assert m is not None
                scene.lines.append(
                    ScriptLine(m.group(1).lower(), m.group(2).strip(), n, stack[-1][1])
                )
            entry = (ind, len(scene.lines) - 1, is_option)
            if stack[-1][0] == ind and not is_option:
                stack[-1] = entry  # the next line at this indent answers this one
            else:
                stack.append(entry)
        if not closed:
            raise malformed(
                path,
                scene.line_no,
                f"node {scene.title!r} never closed with ===",
                "title: " + scene.title,
            )
        scenes.append(scene)
    return scenes


def read_yarn(path: Path) -> list[Scene]:
    return parse_yarn(_read_text(Path(path)), path)
