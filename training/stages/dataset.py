"""The dataset stage: each character's chat dataset from the accepted examples.

Examples that overlap a held-out question (recipe dataset.heldout) are dropped first.
The datasets that can be built are written even when another character's cannot; the
stage is then not done.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from personae.training.errors import CharacterDataError, SourceError
from personae.training.rundir import write_jsonl
from personae.training.stages.fingerprint import character_digest, digest

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def dataset(pipe: Pipeline, force: bool = False) -> dict[str, dict[str, Any]]:
    from personae.training.base import load_tokenizer, resolve_base
    from personae.training.dataset import (
        build_character_dataset,
        chat_token_counter,
        write_character_dataset,
    )

    fp = digest(
        [
            pipe.recipe.fingerprint("dataset", "characters"),
            pipe.run.state().get("extract", {}).get("fingerprint", ""),
            *(character_digest(c) for c in pipe.characters.values()),
        ]
    )
    if pipe.skip("dataset", fp, force):
        return {
            cid: json.loads((pipe.run / f"dataset/{cid}/card.json").read_text())
            for cid in pipe.characters
        }
    examples, overlapping = _without_heldout(pipe, pipe.examples())
    counter = chat_token_counter(load_tokenizer(resolve_base(pipe.recipe.base_model)))
    cards = {}
    errors = []
    for t in pipe.recipe.characters:
        ch = pipe.characters[t.id]
        try:
            ds = build_character_dataset(
                ch,
                examples,
                pipe.recipe.dataset,
                counter,
                min_examples=t.min_examples,
                sources=[p.name for p in pipe.recipe.source_paths],
            )
        except CharacterDataError as exc:
            errors.append(str(exc))
            continue
        if overlapping[t.id]:
            ds.dropped["overlaps a held-out question"] += overlapping[t.id]
        cards[t.id] = write_character_dataset(pipe.run / f"dataset/{t.id}", ds, ch)
        c = cards[t.id]["examples"]
        pipe.say(f"dataset {t.id}: {c['train']} train, {c['val']} validation")
    if errors:
        # the datasets that could be built are on disk; the stage stays not-done
        raise CharacterDataError("; ".join(errors))
    pipe.run.mark_done("dataset", fp, examples={k: v["examples"] for k, v in cards.items()})
    return cards


def _without_heldout(
    pipe: Pipeline, examples: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Drop examples that overlap a held-out question (dataset.heldout files)."""
    from personae.training.heldout import OverlapChecker, load_heldout

    dropped: Counter[str] = Counter()
    if not pipe.recipe.dataset.heldout:
        return examples, dropped
    paths = []
    for p in pipe.recipe.dataset.heldout:
        found = sorted(pipe.recipe.path(p.parent).glob(p.name))
        if not found:
            raise SourceError(f"{pipe.recipe.path(p)}: no held-out file (recipe dataset.heldout)")
        paths += found
    checker = OverlapChecker(load_heldout(paths))
    kept, removed = [], []
    for ex in examples:
        hit = checker.overlaps([ex])
        if hit:
            dropped[ex["character"]] += 1
            removed.append({**ex, "heldout": hit[0][1]})
        else:
            kept.append(ex)
    write_jsonl(pipe.run / "dataset/heldout_dropped.jsonl", removed)
    pipe.say(f"dataset: {len(removed)} examples overlap held-out questions, dropped")
    return kept, dropped
