"""The extract stage: training examples from the chapters, scenes and lore bible.

    dialogue (quoted speech, attributed) + scripts (written speakers) + lore Q&A
    + rewrite (rewrite.py) + grounded Q&A (qa.py)  ->  extract/*.jsonl, counts

The lore bible is read here, not at ingest, so its content is part of this stage's
fingerprint.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from personae.training.dialogue import dialogue_examples, extract_all
from personae.training.errors import SourceError, TrainingError
from personae.training.rundir import read_jsonl, write_json, write_jsonl
from personae.training.stages.fingerprint import digest, file_digest
from personae.training.stages.qa import qa_examples
from personae.training.stages.rewrite import rewrite_examples

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def extract(pipe: Pipeline, force: bool = False) -> dict[str, int]:
    chapters = pipe.chapters()
    fp = digest(
        [
            pipe.recipe.fingerprint("characters", "strategies", "teacher"),
            pipe.run.state().get("ingest", {}).get("fingerprint", ""),
            *_lore_digest(pipe),
        ]
    )
    if pipe.skip("extract", fp, force):
        return pipe.run.state()["extract"]["counts"]
    counts: Counter[str] = Counter()
    counts.update(_scripted_and_lore(pipe))
    targets = {t.id for t in pipe.recipe.characters}
    attributor = pipe.attributor(chapters)
    per_chapter = extract_all(chapters, attributor)
    s = pipe.recipe.strategies

    if s.dialogue.enabled:
        rows = []
        methods: Counter[str] = Counter()
        for ch, utts in zip(chapters, per_chapter, strict=True):
            methods.update(u.method for u in utts)
            rows += dialogue_examples(
                ch, utts, targets, context_paragraphs=s.dialogue.context_paragraphs
            )
        write_jsonl(pipe.run / "extract/dialogue.jsonl", rows)
        counts.update(f"dialogue:{r['character']}" for r in rows)
        utter = [u for us in per_chapter for u in us]
        write_json(
            pipe.run / "extract/attribution.json",
            {
                "utterances": len(utter),
                "attributed": sum(1 for u in utter if u.speaker),
                "by_method": dict(methods),
                "by_speaker": dict(Counter(u.speaker or "(unattributed)" for u in utter)),
            },
        )
    if s.rewrite.enabled:
        counts.update(rewrite_examples(pipe, chapters, attributor))
    if s.qa.enabled:
        counts.update(qa_examples(pipe, chapters))
    pipe.run.mark_done("extract", fp, counts=dict(counts))
    pipe.say("extract: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return dict(counts)


def _lore_digest(pipe: Pipeline) -> list[str]:
    """The lore bible is read at extract (not ingest): its content reruns the stage."""
    lore = pipe.recipe.strategies.lore
    if not lore.enabled or lore.bible is None or not pipe.recipe.path(lore.bible).is_file():
        return []
    return [file_digest(pipe.recipe.path(lore.bible))]


def _scripted_and_lore(pipe: Pipeline) -> Counter[str]:
    """Examples whose speakers are explicit (scripts) and offline lore Q&A."""
    from personae.training.ingest.scenes import Scene
    from personae.training.lore_qa import lore_examples
    from personae.training.scripted import scripted_examples

    s = pipe.recipe.strategies
    counts: Counter[str] = Counter()
    names = {
        cid: (c.name.split()[0], pipe.recipe.target(cid).pronouns)
        for cid, c in pipe.characters.items()
    }
    scenes_path = pipe.run / "ingest/scenes.jsonl"
    if s.script.enabled and scenes_path.is_file():
        speakers = {cid: cid for cid in names} | {n.lower(): cid for cid, (n, _) in names.items()}
        rows = scripted_examples((Scene.from_dict(d) for d in read_jsonl(scenes_path)), speakers)
        write_jsonl(pipe.run / "extract/script.jsonl", rows)
        counts.update(f"script:{r['character']}" for r in rows)
    if s.lore.enabled:
        if s.lore.bible is None:
            raise TrainingError("strategies.lore.enabled needs strategies.lore.bible (a path)")
        bible = pipe.recipe.path(s.lore.bible)
        if not bible.is_file():
            raise SourceError(f"{bible}: lore bible not found (recipe strategies.lore.bible)")
        rows = lore_examples(bible.read_text(encoding="utf-8"), names, source=bible.name)
        write_jsonl(pipe.run / "extract/lore.jsonl", rows)
        counts.update(f"lore:{r['character']}" for r in rows)
    return counts
