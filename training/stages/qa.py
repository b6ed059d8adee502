"""Strategy C of the extract stage: grounded Q&A in the character's voice (teacher).

The teacher is asked for question and answer pairs on each chunk that names the
character; an answer is accepted when the chunk supports it. Each pair is appended to
extract/qa.jsonl as it arrives, so an interrupted run asks only for what is missing.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from personae.training.errors import TeacherError
from personae.training.ingest import Chapter
from personae.training.rundir import append_jsonl, read_jsonl

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def qa_examples(pipe: Pipeline, chapters: list[Chapter]) -> Counter[str]:
    from personae.training import qa
    from personae.training.teacher import Teacher, parse_json_reply

    cfg = pipe.recipe.strategies.qa
    out_path = pipe.run / "extract/qa.jsonl"
    done = {r["id"] for r in read_jsonl(out_path)} if out_path.is_file() else set()
    counts: Counter[str] = Counter()
    for r in read_jsonl(out_path) if out_path.is_file() else []:
        counts[f"qa:{r['character']}" if r["accepted"] else f"qa rejected:{r['character']}"] += 1
    with Teacher(pipe.recipe.teacher) as teacher, pipe.progress() as bar:  # type: ignore[arg-type]
        jobs = [
            (sp, ch, off, text)
            for sp in pipe.speakers()
            for ch, off, text in qa.chunks(chapters, sp.names)[: cfg.max_chunks]
        ]
        task = bar.add_task("grounded Q&A (teacher)", total=len(jobs))
        for sp, ch, off, text in jobs:
            chunk_id = f"{sp.id}:{ch.index}:{off}"
            if any(d.startswith(chunk_id + "#") for d in done):
                bar.advance(task)
                continue
            character = pipe.characters[sp.id]
            reply = teacher.chat(
                qa.teacher_messages(
                    text, character.name, character.speaking_style, cfg.questions_per_chunk
                )
            )
            try:
                pairs = parse_json_reply(reply)
                if not isinstance(pairs, list):
                    raise ValueError("not a list")
            except ValueError as exc:
                raise TeacherError(
                    f"teacher endpoint {pipe.recipe.teacher.base_url} (recipe teacher.base_url) "  # type: ignore[union-attr]
                    f"did not return the JSON list asked for ({exc}): {reply[:200]}"
                ) from exc
            for i, pair in enumerate(pairs):
                q, a = str(pair.get("question", "")), str(pair.get("answer", ""))
                share, missing = qa.support(a, text, sp.names)
                accepted = bool(q and a) and share >= cfg.min_support and not missing
                append_jsonl(
                    out_path,
                    {
                        "id": f"{chunk_id}#{i}",
                        "character": sp.id,
                        "strategy": "qa",
                        "user": q,
                        "assistant": a,
                        "accepted": accepted,
                        "support": round(share, 3),
                        "unsupported_names": missing,
                        "provenance": {
                            "file": ch.source,
                            "chapter": ch.index,
                            "chapter_title": ch.title,
                            "offset": off,
                        },
                    },
                )
                counts[f"qa:{sp.id}" if accepted else f"qa rejected:{sp.id}"] += 1
            bar.advance(task)
    return counts
