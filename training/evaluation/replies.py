"""Replies to the evaluation questions in three conditions, as the daemon would give them.

- `adapter`: the character's prompt (system prompt, examples) wearing its adapter;
- `prompt`: the same prompt on the bare base model;
- `base`: the bare base model told only who it is ("You are Bram."), no adapter.

Each reply is generated with the character's generation settings and finished the way
the daemon finishes a spoken reply (`daemon.session.finishing`): budget plus grace, then
trimmed to its last complete sentence.
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from personae.daemon.characters import Character, GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest, LLMEngine
from personae.daemon.runtime.lore import lore_for
from personae.daemon.session.finishing import Finisher, complete, with_grace
from personae.daemon.session.prompt import Turn, build_messages
from personae.daemon.session.splitter import SentenceSplitter
from personae.training.evaluation.questions import Question

CONDITIONS = ("adapter", "prompt", "base")


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    cut: bool  # the budget ended it (trimmed to its last sentence, or trailing off)
    tokens: int  # deltas the engine gave
    #: without the finishing, the budget would have stopped it mid-sentence
    unfinished_at_budget: bool = False


def finished_reply(llm: LLMEngine, request: GenerationRequest, grace: int) -> Reply:
    """One reply, finished as the daemon finishes it."""
    finisher = Finisher(SentenceSplitter(), request.params.max_tokens, grace, early_first=False)
    asked = dataclasses.replace(request, params=with_grace(request.params, grace))
    cancel = threading.Event()
    deltas = llm.generate(asked, cancel)
    try:
        for delta in deltas:
            finisher.push(delta)
            if finisher.enough:
                cancel.set()
                break
    finally:
        close = getattr(deltas, "close", None)
        if close is not None:
            close()
    counted = llm.count_tokens(asked.messages, finisher.raw) if finisher.needs_count() else None
    finisher.finish(finisher.ran_out(counted[1] if counted else None))
    at = finisher.at_budget
    mid = at is not None and finisher.raw != at and not complete(at)
    return Reply(finisher.text, finisher.cut, finisher.tokens, mid)


#: the daemon's default `lore_budget_tokens`
LORE_BUDGET = 200


def messages_for(
    character: Character, q: Question, condition: str, *, lore_budget: int = LORE_BUDGET
) -> list[ChatMessage]:
    """The prompt of one condition. `adapter` and `prompt` get what the daemon's prompt
    holds for a first meeting: the character file and the lore its lorebook selects
    for the conversation (no memories yet; the mood line is left out); `base` gets
    only the character's name."""
    history = [Turn(s, t) for u, c in q.history for s, t in (("player", u), (character.id, c))]
    history.append(Turn("player", q.question))
    if condition == "base":
        msgs = [ChatMessage("system", f"You are {character.name}.")]
        for turn in history:
            role = "user" if turn.speaker == "player" else "assistant"
            msgs.append(ChatMessage(role, turn.text))
        return msgs
    # the adapter condition is served as the daemon serves it: with the lore its
    # adapter was trained with, where the adapter says
    budget = character.lore_budget(lore_budget) if condition == "adapter" else lore_budget
    context = lore_for(character, [t.text for t in history], budget_tokens=budget)
    return build_messages(character, history, max_turns=len(history) + 1, context=context)


def seed_of(q: Question) -> int:
    """The same seed for a question in every condition and run: conditions compare."""
    return zlib.crc32(q.id.encode()) & 0x7FFFFFFF


def reply_to(
    llm: LLMEngine,
    character: Character,
    q: Question,
    condition: str,
    *,
    adapter: str | None,
    params: GenerationParams,
    grace: int,
    lore_budget: int = LORE_BUDGET,
) -> Reply:
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; one of {', '.join(CONDITIONS)}")
    request = GenerationRequest(
        messages=messages_for(character, q, condition, lore_budget=lore_budget),
        params=params,
        adapter=adapter if condition == "adapter" else None,
        seed=seed_of(q),
    )
    return finished_reply(llm, request, grace)


Progress = Callable[[str], None]
