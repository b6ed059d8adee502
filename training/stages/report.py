"""The run's report.md: sources, extracted examples, each adapter and the evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from personae.training.rundir import write_atomic

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def write_report(pipe: Pipeline) -> Path:
    state = pipe.run.state()
    lines = [f"# Run report: {pipe.recipe.name}", ""]
    if "ingest" in state:
        lines.append(
            f"Sources: {', '.join(p.name for p in pipe.recipe.source_paths)}: {state['ingest']['chapters']} chapters, {state['ingest']['words']} words."
        )
    if "extract" in state:
        lines += ["", "## Extracted examples", "", "| kind | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(state["extract"]["counts"].items())]
        att = pipe.run / "extract/attribution.json"
        if att.is_file():
            a = json.loads(att.read_text())
            lines += [
                "",
                f"Dialogue: {a['utterances']} paragraphs of speech, {a['attributed']} "
                f"attributed, {a['utterances'] - a['attributed']} left out as unsure "
                "(not guessed).",
            ]
    for t in pipe.recipe.characters:
        fit = state.get(f"fit:{t.id}")
        if fit:
            m = fit["metrics"]
            lines += [
                "",
                f"## {t.id}",
                "",
                f"Adapter: `{fit['adapter']}`; {m['train_examples']} train / {m['val_examples']} validation examples, {m['steps']} steps in {m['train_seconds']} s; validation loss {m['eval_loss']}.",
                "",
                f"![loss](fit/{t.id}/loss.png)",
            ]
    rep = pipe.run / "eval/report.json"
    if rep.is_file():
        r = json.loads(rep.read_text())
        lines += [
            "",
            "## Evaluation",
            "",
            "| character | held-out lines | perplexity base | perplexity adapter | attribution adapter | attribution prompt-only |",
            "|---|---|---|---|---|---|",
        ]
        attribution = r.get("attribution") or {"per_character": {}, "accuracy": {}}
        for cid, p in r["perplexity"].items():
            a = attribution["per_character"].get(cid, {})
            lines.append(
                f"| {cid} | {p['lines']} | {p['base']} | {p.get('adapter', '-')} | {a.get('adapter', '-')} | {a.get('prompt_only', '-')} |"
            )
        acc = attribution["accuracy"]
        lines += [
            "",
            f"Attribution accuracy over all characters: adapter {acc.get('adapter', '-')}, prompt-only {acc.get('prompt_only', '-')}"
            + (f" (against {attribution['against']})." if attribution.get("against") else "."),
        ]
    if (pipe.run / "eval/questions/report.md").is_file():
        lines += ["", "Question sets: [eval/questions/report.md](eval/questions/report.md)."]
    path = pipe.run / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path
