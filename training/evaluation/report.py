"""The evaluation's report: JSON (every reply and score), Markdown tables, a plot per character."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: (summary key, column heading, whether the figure is a rate)
COLUMNS = (
    ("key_facts", "key facts", True),
    ("contradictions", "contradictions", True),
    ("attribution", "attribution", True),
    ("complete", "complete sentences", True),
    ("as_player", "as player", False),
    ("as_other", "as another", False),
    ("cut", "cut by budget", False),
    ("unfinished_at_budget", "mid-sentence without finishing", False),
    ("mean_words", "mean words", False),
)
LABELS = {"adapter": "adapter + prompt", "prompt": "prompt only", "base": "base"}


def _cell(value: Any, rate: bool) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.0f}%" if rate else f"{value:g}"


def table(summary: dict[str, dict[str, Any]]) -> str:
    head = "| condition | replies | " + " | ".join(c[1] for c in COLUMNS) + " |"
    rule = "|---|---:|" + "---:|" * len(COLUMNS)
    rows = [head, rule]
    for condition, s in summary.items():
        cells = [_cell(s.get(key), rate) for key, _, rate in COLUMNS]
        rows.append(
            f"| {LABELS.get(condition, condition)} | {s['replies']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(rows)


def markdown(result: dict[str, Any], title: str) -> str:
    out = [f"# {title}", ""]
    meta = result.get("meta", {})
    if meta:
        out += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    out += [
        "Key facts: replies stating at least one of their question's key facts. "
        "Contradictions: replies stating a wrong fact. Attribution: replies the training "
        "package's style classifier gives to the character. Complete: replies ending on a "
        "complete sentence.",
        "",
    ]
    for cid, c in result["characters"].items():
        out += [f"## {cid} ({c['questions']} questions)", "", table(c["summary"]), ""]
        gen = c.get("generation", {})
        if gen:
            out += [
                "Generation: " + ", ".join(f"{k} {v}" for k, v in gen.items() if k != "stop"),
                "",
            ]
        out += [f"![{cid}]({cid}.png)", ""]
        samples = c["replies"].get("adapter") or next(iter(c["replies"].values()), [])
        out += ["Sample replies:", ""]
        for s in samples[:3]:
            out.append(f"- *{s['question']}* → {s['reply']!r}")
        out.append("")
    return "\n".join(out)


def plot(cid: str, summary: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [(k, h) for k, h, rate in COLUMNS if rate]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / max(1, len(summary))
    for i, (condition, s) in enumerate(summary.items()):
        xs = [j + i * width for j in range(len(metrics))]
        ys = [100 * (s.get(k) or 0) for k, _ in metrics]
        bars = ax.bar(xs, ys, width, label=LABELS.get(condition, condition))
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks([j + width * (len(summary) - 1) / 2 for j in range(len(metrics))])
    ax.set_xticklabels([h for _, h in metrics])
    ax.set_ylim(0, 125)
    ax.set_ylabel("% of replies")
    ax.set_title(f"{cid}: {next(iter(summary.values()))['replies']} questions per condition")
    ax.legend(fontsize=8, loc="upper center", ncol=len(summary), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict[str, Any], out: Path, *, title: str) -> list[Path]:
    """report.json, report.md and <character>.png in `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json", out / "report.md"]
    written[0].write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    written[1].write_text(markdown(result, title))
    for cid, c in result["characters"].items():
        plot(cid, c["summary"], out / f"{cid}.png")
        written.append(out / f"{cid}.png")
    return written
