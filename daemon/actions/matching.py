"""A player's line to one of the answering character's actions or goal intents.

The embedder the router already loads (all-MiniLM-L6-v2 by default) embeds every
example line once per character; a line's score for an action is its best cosine
similarity to that action's examples. The character's ordinary example lines
(`[[examples]]`' player side) compete as "talk": a line closer to small talk than to
any action is talk (a talk line that is itself an action's request is left out), and
so are a dozen generic lines (`SMALL_TALK`) every conversation has. An action is chosen only when its score reaches `threshold` and
beats every other candidate, talk included, by `margin`: a wrong action is worse than
none. Argument words (the actions' enum values and aliases) and numbers are masked in
every line before embedding, so the request's form is compared rather than its topic.
Last, a line matched to an action must be phrased as a request (`asks`: "can you", "I'll pay", "please",
or a verb of doing first): a question about the same subject is talk.
Thresholds are measured in bench/actions.py on labelled lines.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from personae.daemon.actions.arguments import NUMBER_WORDS
from personae.daemon.engines.base import Embedder

TALK = ("talk", "")
#: a talk line at least this close to an action's example asks for that action
SAME_REQUEST = 0.75
#: questions and remarks of any conversation, which ask nothing of the character; they
#: compete as talk with every character's actions (with its own `[[examples]]`)
SMALL_TALK = (
    "Hello there, how are you?",
    "Tell me about yourself.",
    "What do you think about that?",
    "Where is that place?",
    "Who is that?",
    "What happened here?",
    "Why do you say that?",
    "How long have you lived here?",
    "What is this place?",
    "Have you heard the news?",
    "Thank you, goodbye.",
    "What do you know about it?",
    "Tell me about it.",
    "When did that happen?",
    "Did you do that yourself?",
    "Is it true what they say about it?",
)


@dataclass(frozen=True, slots=True)
class Match:
    #: ("action", name) or ("goal", name); None when nothing was chosen
    kind: str | None
    name: str | None
    score: float
    #: the best other candidate's score (talk included)
    runner_up: float


@dataclass(frozen=True, slots=True)
class _Table:
    keys: tuple[tuple[str, str], ...]  # one per row
    vectors: np.ndarray  # (rows, dims), L2-normalised
    #: argument words (enum values, aliases) of the character's actions, longest first
    slots: tuple[str, ...]


def slot_words(ch: object) -> tuple[str, ...]:
    found: set[str] = set()
    for a in ch.actions:  # type: ignore[attr-defined]
        for prop in a.parameters.get("properties", {}).values():
            for value in prop.get("enum", []):
                found.add(str(value).lower())
                found.update(w.lower() for w in prop.get("x-aliases", {}).get(value, []))
    return tuple(sorted(found, key=len, reverse=True))


def mask(text: str, slots: tuple[str, ...]) -> str:
    """`text` with its argument words and numbers replaced by "it": the request's form is
    compared, not its topic ("When was the flood?" is not "look up the flood")."""
    out = text.lower()
    for word in slots:
        out = re.sub(rf"\b{re.escape(word)}(e?s)?\b", "it", out)
    words = [w for w in re.findall(r"[a-z0-9']+|[^a-z0-9'\s]+", out)]
    kept = ["it" if w.isdigit() or w in NUMBER_WORDS else w for w in words]
    return " ".join(kept)


#: words that make a line a request of the character ("can you", "I'll pay", "please")
REQUEST_CUES = (
    "can you", "could you", "would you", "will you", "can i", "could i", "may i",
    "i want", "i'd like", "i would like", "i need", "needs", "i'm after", "let me",
    "i'll give", "i'll pay", "i will pay", "i'll take", "here's", "here is", "how much",
    "how about", "please",
)  # fmt: skip
#: verbs a request may start with ("Bring my message to the bridge")
REQUEST_VERBS = frozenset(
    "bring get take give send run carry deliver fix repair mend patch sharpen sell find "
    "search check look dig fetch research show make".split()
)
_WORDS = re.compile(r"[a-z']+")


def asks(ch: object, text: str) -> bool:
    """Whether `text` is phrased as a request: a request cue, or it starts with a verb of
    doing (the generic ones, or one an action's example or goal's intent starts with).
    A question *about* a subject ("Did the flood reach the archive?") is not one."""
    words = _WORDS.findall(text.lower())
    # "Wren, take this letter": the words addressing the character come first
    addressing = _GREETINGS | {w for n in ch.names for w in _WORDS.findall(n.lower())}  # type: ignore[attr-defined]
    while words and words[0] in addressing:
        words = words[1:]
    joined = f" {' '.join(words)} "
    if any(f" {cue} " in joined for cue in REQUEST_CUES):
        return True
    starts = (
        {
            first
            for line in [
                *(e for a in ch.actions for e in a.examples),  # type: ignore[attr-defined]
                *(e for g in ch.goals for e in g.intents),  # type: ignore[attr-defined]
            ]
            for first in _WORDS.findall(line.lower())[:1]
        }
        - _NOT_VERBS
    )
    return bool(words) and (words[0] in REQUEST_VERBS or words[0] in starts)


_GREETINGS = frozenset("hey hi oi hello so ok okay and now well listen".split())
#: first words of example lines that are not verbs of doing
_NOT_VERBS = frozenset(
    "i i'd i'll i'm can could would will my the a what how it do does is are "
    "there here you your".split()
)


class IntentMatcher:
    def __init__(self, embedder: Embedder, *, threshold: float, margin: float) -> None:
        self._embedder = embedder
        self.threshold = threshold
        self.margin = margin
        self._tables: dict[tuple[object, ...], _Table] = {}
        self._lock = threading.Lock()

    def match(self, character: object, text: str) -> Match:
        """The best action or goal intent of `character` (a Character) for `text`."""
        table = self._table(character)
        if table is None or not text.strip():
            return Match(None, None, 0.0, 0.0)
        q = self._embedder.embed([mask(text, table.slots)])[0]
        sims = table.vectors @ q
        best: dict[tuple[str, str], float] = {}
        for key, s in zip(table.keys, sims.tolist(), strict=True):
            best[key] = max(best.get(key, -1.0), s)
        ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
        (key, score) = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else -1.0
        if key == TALK or score < self.threshold or score - runner_up < self.margin:
            return Match(None, None, score, runner_up)
        if key[0] == "action" and not asks(character, text):  # about it, not asking for it
            return Match(None, None, score, runner_up)
        return Match(key[0], key[1], score, runner_up)

    def _table(self, ch: object) -> _Table | None:
        rows: list[tuple[tuple[str, str], str]] = []
        for a in ch.actions:  # type: ignore[attr-defined]
            rows += [(("action", a.name), e) for e in a.examples]
        for g in ch.goals:  # type: ignore[attr-defined]
            rows += [(("goal", g.name), e) for e in g.intents]
        if not rows:
            return None
        rows += [(TALK, e.user) for e in ch.examples]  # type: ignore[attr-defined]
        rows += [(TALK, line) for line in SMALL_TALK]
        cache_key = (ch.id, *rows)  # type: ignore[attr-defined]
        with self._lock:
            table = self._tables.get(cache_key)
        if table is None:
            slots = slot_words(ch)
            texts = [mask(t, slots) for _, t in rows]
            vectors = np.asarray(self._embedder.embed(texts), dtype=np.float32)
            keys = [k for k, _ in rows]
            # a small-talk line that itself asks for an action ("Can you fix my sword?")
            # is that action's, not talk's
            asks = vectors[[i for i, k in enumerate(keys) if k != TALK]]
            keep = [
                i
                for i, k in enumerate(keys)
                if k != TALK or float((asks @ vectors[i]).max()) < SAME_REQUEST
            ]
            table = _Table(tuple(keys[i] for i in keep), vectors[keep], slots)
            with self._lock:
                self._tables = {k: v for k, v in self._tables.items() if k[0] != ch.id}  # type: ignore[attr-defined]
                self._tables[cache_key] = table
        return table
