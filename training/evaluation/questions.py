"""A character's evaluation set: questions a player asks, with answer keys.

    character = "bram"
    [[questions]]
    id = "bram-trade-01"
    kind = "trade"            # trade, town, characters, followup, unknowable, rudeness
    question = "Could you put a new edge on my axe?"
    history = [{ user = "...", character = "..." }]   # earlier turns (follow-ups)
    key_facts = [["edge", "sharpen"], ["two coppers", "bench"]]  # facts: alternatives
    wrong_facts = ["i'm an ai"]   # phrases a good answer must not contain
    note = "what a good answer says"

Phrases match case-insensitively as substrings of the reply.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personae.training.errors import TrainingError


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    kind: str
    question: str
    key_facts: tuple[tuple[str, ...], ...]
    wrong_facts: tuple[str, ...] = ()
    history: tuple[tuple[str, str], ...] = ()  # (player line, character line)
    note: str = ""


@dataclass(frozen=True, slots=True)
class QuestionSet:
    character: str
    questions: tuple[Question, ...]
    path: Path | None = None
    kinds: tuple[str, ...] = field(default=())

    def subset(self, n: int | None, skip: int = 0) -> QuestionSet:
        """`n` questions spread over the kinds (round robin over them), after the first
        `skip` of that order (a second, disjoint subset: tune on one, report on another);
        all when n is None."""
        if n is None and not skip:
            return self
        by_kind: dict[str, list[Question]] = {}
        for q in self.questions:
            by_kind.setdefault(q.kind, []).append(q)
        spread: list[Question] = []
        while len(spread) < len(self.questions):
            for kind in by_kind:
                if by_kind[kind]:
                    spread.append(by_kind[kind].pop(0))
        picked = spread[skip:] if n is None else spread[skip : skip + n]
        order = {q.id: i for i, q in enumerate(self.questions)}
        picked.sort(key=lambda q: order[q.id])
        return QuestionSet(self.character, tuple(picked), self.path, self.kinds)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise TrainingError(f"{where}: expected a list of non-empty strings")
    return tuple(v.lower() for v in value)


def _question(raw: Any, where: str) -> Question:
    if not isinstance(raw, dict):
        raise TrainingError(f"{where}: expected a table")
    for key in ("id", "question"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise TrainingError(f"{where}: `{key}` is missing or empty")
    where = f"{where} ({raw['id']})"
    facts = raw.get("key_facts", [])
    if not isinstance(facts, list):
        raise TrainingError(f"{where}: `key_facts` must be a list of lists of phrases")
    history = []
    for i, turn in enumerate(raw.get("history", [])):
        if not isinstance(turn, dict) or not {"user", "character"} <= set(turn):
            raise TrainingError(f"{where}: history[{i}] needs `user` and `character`")
        history.append((str(turn["user"]), str(turn["character"])))
    return Question(
        id=raw["id"],
        kind=str(raw.get("kind", "other")),
        question=raw["question"].strip(),
        key_facts=tuple(_strings(f, f"{where}: key_facts") for f in facts),
        wrong_facts=_strings(raw.get("wrong_facts", []), f"{where}: wrong_facts"),
        history=tuple(history),
        note=str(raw.get("note", "")),
    )


def load_questions(path: Path) -> QuestionSet:
    """Read and check one character's evaluation set; errors name the file and question."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrainingError(f"{path}: {exc}") from None
    character = data.get("character")
    if not isinstance(character, str) or not character:
        raise TrainingError(f"{path}: `character` is missing")
    raw = data.get("questions")
    if not isinstance(raw, list) or not raw:
        raise TrainingError(f"{path}: no [[questions]]")
    questions = tuple(_question(q, f"{path}: question {i + 1}") for i, q in enumerate(raw))
    ids = [q.id for q in questions]
    if dupes := sorted({i for i in ids if ids.count(i) > 1}):
        raise TrainingError(f"{path}: duplicate question ids: {', '.join(dupes)}")
    kinds = tuple(dict.fromkeys(q.kind for q in questions))
    return QuestionSet(character, questions, path, kinds)
