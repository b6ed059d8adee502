"""Action matching on labelled player lines: precision and recall of `npc.action`.

Each line of a JSONL file names the answering character, the player's text, its label
(an action name, "goal:NAME", or null for none) and, for actions, the arguments the
line settles (null when it leaves one out, so the character must ask). Scored with
the default cast and the configured embedder (all-MiniLM-L6-v2, ONNX), exactly as the
session's planner matches:

- match precision: of the lines matched to an action, how many were labelled with it;
- match recall: of the lines labelled with an action, how many were matched to it;
- event precision / recall: the same for the `npc.action` events that would be sent
  (matched, and the extracted arguments valid): an event is right only with the
  labelled arguments; a line that leaves an argument out must send none.

`--grid` sweeps thresholds and margins (on the tuning file, to choose the settings);
without it one setting is scored (the settings' defaults unless given).

    personae bench actions [--file bench/data/actions_holdout3.jsonl] [--grid]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(planner_for: Any, cast: Any, lines: list[dict[str, Any]]) -> dict[str, Any]:
    from personae.daemon.actions.arguments import extract
    from personae.daemon.actions.schema import validate

    matched = right = labelled = found = 0
    sent = sent_right = due = due_found = 0
    goal_right = goal_wrong = 0
    mistakes: list[str] = []
    for row in lines:
        ch = cast[row["character"]]
        m = planner_for.match(ch, row["text"])
        label = row["label"]
        is_action = label is not None and not label.startswith("goal:")
        predicted = m.name if m.kind == "action" else None
        if m.kind == "goal":
            if label == f"goal:{m.name}":
                goal_right += 1
            else:
                goal_wrong += 1
                mistakes.append(f"goal {m.name} <- {row['text']!r} ({label})")
        labelled += is_action
        if predicted is not None:
            matched += 1
            right += predicted == label
            if predicted != label:
                mistakes.append(f"{predicted} <- {row['text']!r} ({label}, {m.score:.2f})")
        if is_action and predicted == label:
            found += 1
        elif is_action:
            mistakes.append(f"missed {label}: {row['text']!r} ({m.score:.2f}/{m.runner_up:.2f})")
        if is_action and row.get("arguments") is not None:
            due += 1
        if predicted is not None:
            spec = ch.action(predicted)
            schema = spec.parameters or {"properties": {}}
            args = extract(schema, row["text"])
            if validate(schema, args) is None:
                sent += 1
                ok = predicted == label and row.get("arguments") == args
                sent_right += ok
                due_found += ok
                if not ok:
                    mistakes.append(f"event {predicted} {args} <- {row['text']!r}")
    return {
        "lines": len(lines),
        "match_precision": right / matched if matched else 1.0,
        "match_recall": found / labelled if labelled else 1.0,
        "event_precision": sent_right / sent if sent else 1.0,
        "event_recall": due_found / due if due else 1.0,
        "matched": matched,
        "events": sent,
        "goals_right": goal_right,
        "goals_wrong": goal_wrong,
        "mistakes": mistakes,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=DATA / "actions_holdout3.jsonl")
    ap.add_argument("--grid", action="store_true", help="sweep thresholds and margins")
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--margin", type=float)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    from personae.daemon.actions.matching import IntentMatcher
    from personae.daemon.characters import default_cast_dir, load_cast
    from personae.daemon.engines import registry
    from personae.daemon.settings import Settings

    settings = Settings()
    embedder = registry.create("embedder", settings.embedder_engine, settings)
    cast = load_cast([default_cast_dir()])
    lines = load(args.file)
    if args.grid:
        print("threshold margin  match P  match R  event P  event R")
        for threshold in (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70):
            for margin in (0.0, 0.03, 0.05, 0.08, 0.10):
                m = IntentMatcher(embedder, threshold=threshold, margin=margin)
                r = score(m, cast, lines)
                print(
                    f"{threshold:9.2f} {margin:6.2f} {r['match_precision']:8.3f} "
                    f"{r['match_recall']:8.3f} {r['event_precision']:8.3f} "
                    f"{r['event_recall']:8.3f}"
                )
        return 0
    threshold = args.threshold if args.threshold is not None else settings.action_match_threshold
    margin = args.margin if args.margin is not None else settings.action_match_margin
    result = score(IntentMatcher(embedder, threshold=threshold, margin=margin), cast, lines)
    result.update(file=args.file.name, threshold=threshold, margin=margin)
    json.dump(result, sys.stdout, indent=2)
    print()
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
