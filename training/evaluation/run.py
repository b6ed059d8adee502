"""Run a cast's evaluation sets against one engine and score every reply."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from personae.daemon.characters import Character, GenerationParams
from personae.daemon.engines.base import LLMEngine
from personae.training.evaluate import StyleClassifier
from personae.training.evaluation.questions import QuestionSet
from personae.training.evaluation.replies import CONDITIONS, LORE_BUDGET, reply_to
from personae.training.evaluation.scoring import ReplyScore, score_reply, summarize

#: called after each reply: (character, condition, question id, reply text)
OnReply = Callable[[str, str, str, str], None]


def evaluate_cast(
    llm: LLMEngine,
    cast: Mapping[str, Character],
    sets: Mapping[str, QuestionSet],
    *,
    adapters: Mapping[str, str | None],
    lines: Mapping[str, list[str]],
    conditions: Sequence[str] = CONDITIONS,
    params: Callable[[Character], GenerationParams] | None = None,
    grace: int = 24,
    lore_budget: int = LORE_BUDGET,
    on_reply: OnReply | None = None,
) -> dict[str, Any]:
    """Replies to every question of `sets` (character id -> set) in each condition,
    scored; `adapters` names each character's resident adapter; `lines` train the
    attribution classifier (speaker -> lines); `params` the generation settings
    (default: each character's own); `lore_budget` the tokens of lore in a prompt, as
    the daemon's `lore_budget_tokens`."""
    clf = StyleClassifier({k: v for k, v in lines.items() if v})
    names_of = {cid: [ch.name, *getattr(ch, "aliases", ())] for cid, ch in cast.items()}
    everyone = [n for ns in names_of.values() for n in ns] + [cid for cid in cast]
    started = time.monotonic()
    result: dict[str, Any] = {"characters": {}, "conditions": list(conditions)}
    for cid, qset in sets.items():
        ch = cast[cid]
        gen = params(ch) if params is not None else ch.generation
        per: dict[str, list[ReplyScore]] = {}
        for condition in conditions:
            if condition == "adapter" and adapters.get(cid) is None:
                continue
            scores = []
            for q in qset.questions:
                reply = reply_to(
                    llm,
                    ch,
                    q,
                    condition,
                    adapter=adapters.get(cid),
                    params=gen,
                    grace=grace,
                    lore_budget=lore_budget,
                )
                score = score_reply(
                    q,
                    reply.text,
                    character=cid,
                    condition=condition,
                    names=names_of[cid],
                    others=[n for n in everyone if n not in names_of[cid] and n != cid],
                    cut=reply.cut,
                )
                score.extra["unfinished_at_budget"] = reply.unfinished_at_budget
                scores.append(score)
                if on_reply is not None:
                    on_reply(cid, condition, q.id, reply.text)
            for score, guess in zip(
                scores, clf.predict([s.reply or "…" for s in scores]), strict=True
            ):
                score.attributed = guess
            per[condition] = scores
        result["characters"][cid] = {
            "questions": len(qset.questions),
            "question_set": str(qset.path) if qset.path else None,
            "generation": gen.model_dump(mode="json"),
            "summary": {c: summarize(s) for c, s in per.items()},
            "replies": {c: [s.as_dict() for s in ss] for c, ss in per.items()},
        }
    result["grace_tokens"] = grace
    result["lore_budget_tokens"] = lore_budget
    result["classifier_lines"] = {k: len(v) for k, v in lines.items()}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result
