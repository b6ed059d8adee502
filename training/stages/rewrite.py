"""Strategy B of the extract stage: narrative retold in the character's first person.

By rule or by the recipe's teacher; each item is appended to extract/rewrite.jsonl as
it is made, so an interrupted run asks only for what is missing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from personae.training.dialogue import Attributor
from personae.training.ingest import Chapter
from personae.training.rundir import append_jsonl, read_jsonl

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def rewrite_examples(
    pipe: Pipeline, chapters: list[Chapter], attributor: Attributor
) -> Counter[str]:
    from personae.training import rewrite

    cfg = pipe.recipe.strategies.rewrite
    out_path = pipe.run / "extract/rewrite.jsonl"
    done = {r["id"]: r for r in read_jsonl(out_path)} if out_path.is_file() else {}
    everyone = list(attributor.speakers.values())
    todo = []
    for sp in pipe.speakers():
        found = [(ch, off, p) for ch in chapters for off, p in rewrite.passages(ch, sp, attributor)]
        todo += [(sp, ch, off, p) for ch, off, p in found[: cfg.max_passages]]
    counts: Counter[str] = Counter()
    teacher = None
    if cfg.mode == "teacher":
        from personae.training.teacher import Teacher

        teacher = Teacher(pipe.recipe.teacher)  # type: ignore[arg-type]
    try:
        with pipe.progress() as bar:
            task = bar.add_task(f"rewrite ({cfg.mode})", total=len(todo))
            for sp, ch, off, para in todo:
                item_id = f"{sp.id}:{ch.index}:{off}"
                if item_id not in done:
                    character = pipe.characters[sp.id]
                    if teacher is not None:
                        text = teacher.chat(
                            rewrite.teacher_messages(
                                para, sp, character.name, character.speaking_style
                            )
                        )
                    else:
                        text = rewrite.rule_rewrite(
                            para, sp, everyone, narrator=attributor.narrator
                        )
                    problems = (
                        ["not rewritable by rule"]
                        if text is None
                        else rewrite.third_person_problems(
                            text, sp, narrator=sp.id == attributor.narrator
                        )
                    )
                    row = {
                        "id": item_id,
                        "character": sp.id,
                        "strategy": "rewrite",
                        "user": rewrite.prompt_for(off),
                        "assistant": text or "",
                        "accepted": not problems,
                        "problems": problems,
                        "provenance": {
                            "file": ch.source,
                            "chapter": ch.index,
                            "chapter_title": ch.title,
                            "offset": off,
                        },
                    }
                    append_jsonl(out_path, row)  # saved at once: a failure later loses nothing
                    done[item_id] = row
                counts[
                    f"rewrite:{sp.id}" if done[item_id]["accepted"] else f"rewrite rejected:{sp.id}"
                ] += 1
                bar.advance(task)
    finally:
        if teacher is not None:
            teacher.close()
    return counts
