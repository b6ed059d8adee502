"""The evaluate stage: perplexity, attribution and the recipe's question sets.

Perplexity on the held-out lines, base against adapter; whether a classifier trained
on each character's lines attributes the adapter's replies (and the prompt-only
replies) to the right character; then, when the recipe names them, the question sets
as `personae eval` scores them. The perplexity is written first and kept whatever
happens next.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from personae.daemon.adapters.files import WEIGHTS_FILE
from personae.training.errors import TrainingError
from personae.training.rundir import read_jsonl, write_json
from personae.training.stages.fingerprint import digest, file_digest

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def evaluate(pipe: Pipeline, force: bool = False) -> dict[str, Any]:
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.training.base import resolve_base
    from personae.training.evaluate import (
        BASE,
        OTHERS,
        attribution_report,
        engine_generator,
        other_speakers_lines,
        perplexity_report,
    )

    store = pipe.adapters_dir()
    version = pipe.recipe.output.version
    adapters = {t.id: store / t.id / version for t in pipe.recipe.characters}
    missing = [str(p) for p in adapters.values() if not (p / WEIGHTS_FILE).is_file()]
    if missing:
        raise TrainingError(f"no trained adapter at {', '.join(missing)}: run the fit stage first")
    fp = digest(
        [
            pipe.recipe.fingerprint("evaluation"),
            *(file_digest(p / WEIGHTS_FILE) for p in adapters.values()),
        ]
    )
    if pipe.skip("evaluate", fp, force):
        return json.loads((pipe.run / "eval/report.json").read_text())
    base_dir = resolve_base(pipe.recipe.base_model)
    started = time.monotonic()
    val_files = {cid: pipe.run / f"dataset/{cid}/val.jsonl" for cid in adapters}
    pipe.say("evaluate: perplexity on held-out lines")
    ppl = perplexity_report(base_dir, adapters, val_files)
    # kept whatever happens next
    write_json(pipe.run / "eval/report.json", {"perplexity": ppl, "attribution": None})

    cfg = pipe.recipe.evaluation
    train_lines = {
        cid: [
            r["messages"][-1]["content"]
            for r in read_jsonl(pipe.run / f"dataset/{cid}/train.jsonl")
        ]
        for cid in adapters
    }
    prompts: dict[str, list[list[dict[str, str]]]] = {}
    for cid in adapters:
        rows = list(read_jsonl(val_files[cid])) + list(
            read_jsonl(pipe.run / f"dataset/{cid}/train.jsonl")
        )
        prompts[cid] = [r["messages"][:2] for r in rows[: cfg.prompts]]
    pipe.say(
        f"evaluate: generating {sum(map(len, prompts.values())) * 2} replies for the attribution test"
    )
    llm = TransformersLLM(model_dir=base_dir)
    for cid, path in adapters.items():
        llm.load_adapter(cid, path)
    if len(train_lines) == 1:
        # the classifier needs someone to tell the character from
        others = other_speakers_lines(pipe.chapters(), pipe.attributor, set(adapters), limit=400)
        if len(others) >= 10:
            train_lines[OTHERS] = others
        else:
            (cid,) = adapters
            generate = engine_generator(llm, max_new_tokens=cfg.max_new_tokens, seed=1)
            train_lines[BASE] = [
                generate(None, r["messages"][:2])
                for r in list(read_jsonl(pipe.run / f"dataset/{cid}/train.jsonl"))[
                    : max(10, cfg.prompts)
                ]
            ]
        pipe.say(f"evaluate: one character, compared against {next(reversed(train_lines))}")
    with pipe.progress() as bar:
        task = bar.add_task("attribution replies", total=2 * sum(map(len, prompts.values())))
        attribution = attribution_report(
            train_lines,
            prompts,
            engine_generator(llm, max_new_tokens=cfg.max_new_tokens),
            {cid: cid for cid in adapters},
            on_reply=lambda: bar.advance(task),
        )
    questions = None
    if cfg.questions is not None:  # the same scoring as `personae eval`
        from personae.training.evaluation.stage import question_eval

        pipe.say("evaluate: the question sets, three conditions")
        questions = question_eval(
            llm,
            pipe.recipe.load_characters(),
            adapters,
            train_lines,
            pipe.recipe.path(cfg.questions),
            pipe.run / "eval/questions",
            per_character=cfg.questions_per_character or None,
        )
    report = {
        "perplexity": ppl,
        "attribution": attribution,
        "questions": questions,
        "seconds": round(time.monotonic() - started, 1),
    }
    write_json(pipe.run / "eval/report.json", report)
    pipe.run.mark_done("evaluate", fp)
    pipe.write_report()
    return report
