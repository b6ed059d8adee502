"""The training run's evaluation stage, on the question sets: the same code as
`personae eval`, against the run's freshly trained adapters, its own lines training the
attribution classifier. Written to the run's eval/questions/."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from personae.daemon.characters import Character, load_character
from personae.daemon.engines.base import LLMEngine
from personae.training.evaluation.questions import load_questions
from personae.training.evaluation.report import write_report
from personae.training.evaluation.run import evaluate_cast

#: grace tokens past max_tokens, as the daemon's default `reply_finish_tokens`
GRACE = 24


def question_eval(
    llm: LLMEngine,
    characters: Mapping[str, Character],
    adapters: Mapping[str, Path],
    lines: Mapping[str, list[str]],
    folder: Path,
    out: Path,
    *,
    per_character: int | None,
    on_reply: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """{character: {condition: summary}} for the characters with a set in `folder`;
    each trained character as its adapter folder's character.toml describes it."""
    cast = {}
    for cid, path in adapters.items():
        trained = path / "character.toml"
        cast[cid] = load_character(trained) if trained.is_file() else characters[cid]
    sets = {
        cid: load_questions(folder / f"{cid}.toml").subset(per_character)
        for cid in cast
        if (folder / f"{cid}.toml").is_file()
    }
    if not sets:
        return {}
    result = evaluate_cast(
        llm,
        cast,
        sets,
        adapters={cid: cid for cid in sets},
        lines=lines,
        grace=GRACE,
        on_reply=on_reply,
    )
    write_report(result, out, title="Evaluation on the question sets")
    return {cid: c["summary"] for cid, c in result["characters"].items()}
