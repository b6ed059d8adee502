"""Scores of one reply against its question's answer key, and their summary.

- key facts: each fact is a list of alternative phrases; a fact is stated when any of
  them is a substring of the reply (case-insensitive). A reply *hits* when it states
  at least one of its question's key facts.
- contradictions: any of the question's wrong phrases in the reply.
- complete: the reply ends on a complete sentence (`finishing.complete`, the daemon's
  own test of what it lets a character say).
- speaks as the player: a line of the reply opens as the player's turn ("Player:",
  "User:", "You:") or the chat template's user turn; speaks as another character: a line
  opens "Mara:" or "(Mara says)" for a name other than the character's own.
- attribution: who the training package's classifier (`training.evaluate.StyleClassifier`)
  says spoke the reply; filled in by the caller, which owns the classifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from personae.daemon.session.finishing import complete
from personae.training.evaluation.questions import Question

_PLAYER = re.compile(
    r"^\s*(?:\(?\s*(?:player|user|you|human|traveller)\s*(?:says\))?\s*:|\(player says\))"
    r"|<\|im_start\|>\s*user|<\|user\|>",
    re.IGNORECASE | re.MULTILINE,
)
_SPEAKER = re.compile(r"^\s*(?:\((?P<a>[A-Z][\w' -]{0,30}) says\)|(?P<b>[A-Z][\w'-]{0,20}):)", re.M)


@dataclass(slots=True)
class ReplyScore:
    question: str  # question id
    kind: str
    condition: str
    reply: str
    facts_stated: int
    facts_total: int
    contradictions: list[str]
    complete: bool
    as_player: bool
    as_other: str | None
    words: int
    cut: bool = False
    attributed: str | None = None
    character: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hit(self) -> bool:
        return self.facts_stated > 0 or self.facts_total == 0

    @property
    def in_character(self) -> bool | None:
        return None if self.attributed is None else self.attributed == self.character

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hit"], out["in_character"] = self.hit, self.in_character
        return out


def speaks_as_player(reply: str) -> bool:
    return bool(_PLAYER.search(reply))


def speaks_as_other(
    reply: str, character_names: Iterable[str], others: Iterable[str]
) -> str | None:
    """The other character a line of `reply` opens as, if any."""
    own = {n.lower() for n in character_names}
    known = {n.lower(): n for n in others}
    for m in _SPEAKER.finditer(reply):
        name = (m.group("a") or m.group("b")).strip()
        key = name.lower()
        if key not in own and (key in known or m.group("a")):
            return known.get(key, name)
    return None


def score_reply(
    q: Question,
    reply: str,
    *,
    character: str,
    condition: str,
    names: Sequence[str] = (),
    others: Sequence[str] = (),
    cut: bool = False,
) -> ReplyScore:
    """`names` are the character's own names (id, name, aliases); `others` everyone else's."""
    low = reply.lower()
    stated = sum(any(p in low for p in fact) for fact in q.key_facts)
    return ReplyScore(
        question=q.id,
        kind=q.kind,
        condition=condition,
        reply=reply,
        facts_stated=stated,
        facts_total=len(q.key_facts),
        contradictions=[w for w in q.wrong_facts if w in low],
        complete=complete(reply),
        as_player=speaks_as_player(reply),
        as_other=speaks_as_other(reply, [character, *names], others),
        words=len(reply.split()),
        cut=cut,
        character=character,
    )


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def summarize(scores: Sequence[ReplyScore]) -> dict[str, Any]:
    """Rates over replies: key-fact hits, contradictions, attribution, complete sentences."""
    n = len(scores)
    attributed = [s.in_character for s in scores if s.in_character is not None]
    return {
        "replies": n,
        "key_facts": _rate([s.hit for s in scores]),
        "key_fact_recall": round(
            sum(s.facts_stated for s in scores) / max(1, sum(s.facts_total for s in scores)), 3
        ),
        "contradictions": _rate([bool(s.contradictions) for s in scores]),
        "attribution": _rate([bool(a) for a in attributed]),
        "complete": _rate([s.complete for s in scores]),
        "as_player": sum(s.as_player for s in scores),
        "as_other": sum(s.as_other is not None for s in scores),
        "cut": sum(s.cut for s in scores),
        # how many the budget alone would have stopped mid-sentence (no finishing)
        "unfinished_at_budget": sum(bool(s.extra.get("unfinished_at_budget")) for s in scores),
        "mean_words": round(sum(s.words for s in scores) / n, 1) if n else None,
    }
