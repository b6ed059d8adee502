"""The run directory: every artifact of a run, and which stages are done.

    <run_dir>/
      state.json              stage -> fingerprint of its inputs, finish time
      ingest/chapters.jsonl   cleaned chapters with provenance
      extract/<strategy>.jsonl  examples per strategy (teacher items appended as they come)
      dataset/<id>/           train.jsonl, val.jsonl, card.md, card.json
      fit/<id>/               checkpoints/, loss.png, metrics.json
      eval/                   report.json
      export/<id>/            axolotl/, hosted/, merged/
      report.md               the run's report

A stage whose fingerprint (its recipe sections and inputs) is unchanged is skipped, so
running the same command after an interruption resumes where it stopped. Files are
written to a temporary name and renamed, so an interruption never leaves half a file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one row and flush it to disk: items survive a crash of later items."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __truediv__(self, part: str) -> Path:
        return self.root / part

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        if not self.state_path.is_file():
            return {}
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def is_done(self, stage: str, fingerprint: str) -> bool:
        entry = self.state().get(stage)
        return bool(entry) and entry.get("fingerprint") == fingerprint

    def mark_done(self, stage: str, fingerprint: str, **info: Any) -> None:
        state = self.state()
        state[stage] = {
            "fingerprint": fingerprint,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **info,
        }
        write_json(self.state_path, state)

    def forget(self, stage: str) -> None:
        state = self.state()
        if state.pop(stage, None) is not None:
            write_json(self.state_path, state)
