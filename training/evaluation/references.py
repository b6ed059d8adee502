"""Lines the attribution classifier learns each speaker's voice from.

Two sources: a training run's own dataset (the lines each adapter was trained on, what
the run's evaluation stage uses), or a world folder's dialogue scripts, whose speakers
are explicit: screenplay `BRAM: line` and Yarn Spinner `Bram: line` (the
`personae.training.ingest` readers are the full parsers; here only speaker and line are
needed). Lines of speakers outside the cast form one more class, OTHERS, so a reply in
nobody's voice is not forced onto a character.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from personae.daemon.characters import Character
from personae.training.evaluate import OTHERS
from personae.training.rundir import read_jsonl

_LINE = re.compile(r"^\s*(?P<who>[A-Z][A-Za-z]+)(?:\s*\([^)]*\))?\s*:\s*(?P<text>\S.*)$")
_YARN_MARKUP = re.compile(r"\s*(?:#[\w:-]+|<<[^>]*>>)")
_NOT_SPEAKERS = frozenset({"title", "tags", "position", "int", "ext", "scene", "note"})


def script_lines(folder: Path, cast: Mapping[str, Character]) -> dict[str, list[str]]:
    """{character id or OTHERS: lines} from the *.script and *.yarn files under `folder`,
    plus each character's own example replies and greeting. The player's lines are left
    out."""
    ids = {}
    for cid, ch in cast.items():
        ids[cid.lower()] = cid
        ids[ch.name.lower()] = cid
    lines: dict[str, list[str]] = {cid: [] for cid in cast}
    others: list[str] = []
    files = sorted(folder.rglob("*.script")) + sorted(folder.rglob("*.yarn"))
    for path in files:
        for raw in path.read_text(encoding="utf-8").splitlines():
            if raw.lstrip().startswith(("#", "//", "->", "<<")):
                continue
            m = _LINE.match(raw)
            if m is None or m.group("who").lower() in _NOT_SPEAKERS:
                continue
            who = m.group("who").lower()
            text = _YARN_MARKUP.sub("", m.group("text")).strip()
            if who == "player" or len(text) < 4:
                continue
            if who in ids:
                lines[ids[who]].append(text)
            else:
                others.append(text)
    for cid, ch in cast.items():
        lines[cid] += [ex.character for ex in ch.examples]
        if ch.greeting:
            lines[cid].append(ch.greeting)
    if others:
        lines[OTHERS] = others
    return lines


def run_lines(run_dir: Path, characters: list[str]) -> dict[str, list[str]]:
    """{character: its training lines} from a training run's dataset."""
    out = {}
    for cid in characters:
        path = run_dir / "dataset" / cid / "train.jsonl"
        if path.is_file():
            out[cid] = [r["messages"][-1]["content"] for r in read_jsonl(path)]
    return out
