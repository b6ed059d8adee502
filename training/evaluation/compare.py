"""Tables comparing evaluation reports (old cast vs new), for docs/characters.md.

python -m personae.training.evaluation.compare v1=docs/eval/v1 v2=docs/eval/v2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from personae.training.evaluation.report import LABELS

ROWS = (
    ("key_facts", "key facts hit"),
    ("contradictions", "contradictions"),
    ("attribution", "attribution"),
    ("complete", "complete sentences"),
)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{v * 100:.0f}%"


def tables(reports: dict[str, dict[str, Any]]) -> str:
    """One table per character: a row per figure, a column per (report, condition)."""
    out = []
    characters = dict.fromkeys(c for r in reports.values() for c in r["characters"])
    for cid in characters:
        cols = [
            (label, cond)
            for label, r in reports.items()
            if cid in r["characters"]
            for cond in r["characters"][cid]["summary"]
        ]
        head = (
            "| " + cid + " | " + " | ".join(f"{lab}: {LABELS.get(c, c)}" for lab, c in cols) + " |"
        )
        out += [head, "|---|" + "---:|" * len(cols)]
        for key, name in ROWS:
            cells = [
                _pct(reports[lab]["characters"][cid]["summary"][c].get(key)) for lab, c in cols
            ]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        players = [
            str(reports[lab]["characters"][cid]["summary"][c]["as_player"]) for lab, c in cols
        ]
        out.append("| replies as the player | " + " | ".join(players) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> None:
    reports = {}
    for arg in argv:
        label, _, folder = arg.rpartition("=")
        reports[label or Path(folder).name] = json.loads((Path(folder) / "report.json").read_text())
    print(tables(reports))


if __name__ == "__main__":
    main(sys.argv[1:])
