"""Is a character still itself? Per-character consistency and trait adherence.

Every completed reply is scored on two signals, each kept as a rolling mean over the
character's last `window` replies:

**consistency**: semantic similarity of the reply to the character's reference lines
(its example replies and its greeting, the lines the author wrote in the character's
voice). The score is the mean of the top-k cosine similarities (k=2 by default). The
maximum alone lets one lucky reference carry a reply and rewards parroting a single
line; the mean over all references punishes characters whose example lines are
deliberately varied, since a good reply only resembles some of them. Top-k asks a
reply to sound like more than one of the author's lines without needing all of them.
A character with no example lines and no greeting falls back to its speaking style,
personality and description as references (a weaker signal: descriptions are not
lines).

**traits**: a deliberately simple, explainable check of the character's written
traits, in [0, 1], the mean of two parts:

- *length fit*: words per sentence in the reply against the reference lines,
  `min(a, b) / max(a, b)`. A blunt smith with four-word sentences drifting into
  twenty-word explanations scores low; this is a style check, not a meaning check.
- *trait similarity*: cosine similarity of the reply to the character's
  `personality` and `speaking_style` text, clipped to [0, 1]. Sentence embedders place
  a line and a description of its style only loosely together (all-MiniLM-L6-v2 gives
  about 0.05 to 0.4), so this part separates characters weakly and is useful mostly
  as a trend.

A reply that steps out of the fiction ("As an AI language model, ...") adheres to no
trait: `breaks_character` is set and its trait score is 0.

Absolute values depend on the embedder, so thresholds are set for the embedder in use
(the defaults suit all-MiniLM-L6-v2). When a rolling mean falls below its threshold
after at least `min_replies` replies in the window, `observe` returns an `Alert`, logs
one warning line (scores and names only, never reply or player text) and counts it in
`personae_consistency_alerts_total`. The signal then stays quiet until its rolling
mean recovers to the threshold plus `rearm_margin`, so a drifting character raises one
alert, not one per reply. A character whose reference text changes (a new version is
deployed) starts a fresh window.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

from personae.daemon.characters import Character
from personae.daemon.engines.base import Embedder
from personae.daemon.monitoring.metrics import Metrics

log = logging.getLogger("personae.daemon.monitoring")

Signal = Literal["consistency", "traits"]

_BREAKS_CHARACTER = re.compile(
    r"\b(as an ai\b|an ai (language )?model|a (large )?language model|"
    r"i(?:'m| am) (?:just |only )?(?:an? )?(?:ai|artificial intelligence|virtual assistant|"
    r"chatbot|language model)\b|as a (?:helpful|virtual) assistant)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


@dataclass(frozen=True, slots=True)
class ConsistencyConfig:
    """How replies are judged. Thresholds are on the embedder's cosine scale."""

    #: replies per character in the rolling window
    window: int = 20
    #: replies needed in the window before an alert can fire
    min_replies: int = 5
    #: how many of the best-matching reference lines are averaged
    top_k: int = 2
    #: default rolling consistency threshold (all-MiniLM-L6-v2 scale)
    threshold: float = 0.2
    #: default rolling trait adherence threshold
    trait_threshold: float = 0.2
    #: per-character overrides of `threshold`, by character id
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: per-character overrides of `trait_threshold`, by character id
    trait_thresholds: Mapping[str, float] = field(default_factory=dict)
    #: a signal re-arms once its rolling mean is back at threshold + this margin
    rearm_margin: float = 0.02

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1 reply")
        if not 1 <= self.min_replies <= self.window:
            raise ValueError("min_replies must be between 1 and window")
        if self.top_k < 1:
            raise ValueError("top_k must be at least 1")
        if self.rearm_margin < 0:
            raise ValueError("rearm_margin must not be negative")
        for name in ("thresholds", "trait_thresholds"):
            frozen = MappingProxyType(dict(getattr(self, name)))
            object.__setattr__(self, name, frozen)

    def threshold_for(self, character_id: str, signal: Signal) -> float:
        if signal == "consistency":
            return self.thresholds.get(character_id, self.threshold)
        return self.trait_thresholds.get(character_id, self.trait_threshold)


@dataclass(frozen=True, slots=True)
class Alert:
    """A character's rolling score fell below its threshold (send as `npc.alert`)."""

    character: str
    signal: Signal
    rolling: float
    threshold: float
    #: replies in the window the rolling mean is over
    replies: int


@dataclass(frozen=True, slots=True)
class Observation:
    """One reply's scores, the character's rolling means, and any alert it raised."""

    character: str
    score: float
    traits: float
    breaks_character: bool
    rolling_score: float
    rolling_traits: float
    replies: int
    alerts: tuple[Alert, ...] = ()


@dataclass(slots=True)
class _References:
    fingerprint: tuple[str, ...]
    lines: np.ndarray  # (n, d)
    traits: np.ndarray | None  # (d,) or None when the character describes no traits
    words_per_sentence: float


@dataclass(slots=True)
class _Track:
    references: _References
    scores: deque[float]
    traits: deque[float]
    armed: dict[str, bool] = field(default_factory=lambda: {"consistency": True, "traits": True})


def reference_lines(character: Character) -> tuple[str, ...]:
    """The lines a reply is compared with: example replies and the greeting."""
    lines = [e.character for e in character.examples if e.character.strip()]
    if character.greeting.strip():
        lines.append(character.greeting)
    if not lines:
        fallback = (character.speaking_style, character.personality, character.description)
        lines = [t for t in fallback if t.strip()]
    return tuple(lines)


def trait_text(character: Character) -> str:
    return " ".join(t for t in (character.personality, character.speaking_style) if t.strip())


def words_per_sentence(texts: Sequence[str]) -> float:
    sentences = [s for t in texts for s in _SENTENCE_END.split(t.strip()) if _WORD.search(s)]
    if not sentences:
        return 0.0
    return sum(len(_WORD.findall(s)) for s in sentences) / len(sentences)


def breaks_character(text: str) -> bool:
    """Whether a reply speaks as an AI or assistant instead of as the character."""
    return _BREAKS_CHARACTER.search(text) is not None


class ConsistencyMonitor:
    """Scores replies per character; thread-safe, `observe` blocks (run it on a worker)."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        config: ConsistencyConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.embedder = embedder
        self.config = config or ConsistencyConfig()
        self.metrics = metrics
        self._lock = threading.Lock()
        self._tracks: dict[str, _Track] = {}

    def observe(self, character: Character, text: str) -> Observation | None:
        """Score one completed reply of `character`; None when it has no words to judge."""
        if not _WORD.search(text):
            return None
        refs = self._references(character)
        reply = self.embedder.embed([text])[0]

        sims = np.sort(refs.lines @ reply)[::-1]
        k = min(self.config.top_k, len(sims))
        score = float(np.clip(sims[:k].mean(), -1.0, 1.0))

        broken = breaks_character(text)
        if broken:
            traits = 0.0
        else:
            a, b = words_per_sentence([text]), refs.words_per_sentence
            length_fit = min(a, b) / max(a, b) if a > 0 and b > 0 else 0.0
            if refs.traits is not None:
                similarity = float(np.clip(refs.traits @ reply, 0.0, 1.0))
                traits = (length_fit + similarity) / 2
            else:
                traits = length_fit

        with self._lock:
            track = self._track(character.id, refs)
            track.scores.append(score)
            track.traits.append(traits)
            rolling_score = float(np.mean(track.scores))
            rolling_traits = float(np.mean(track.traits))
            replies = len(track.scores)
            alerts = tuple(
                alert
                for signal, rolling in (("consistency", rolling_score), ("traits", rolling_traits))
                if (alert := self._check(character.id, track, signal, rolling, replies))
            )

        if self.metrics is not None:
            self.metrics.consistency(character.id, score=rolling_score, traits=rolling_traits)
        for alert in alerts:
            log.warning(
                "consistency alert: character=%s signal=%s rolling=%.3f threshold=%.3f replies=%d",
                alert.character,
                alert.signal,
                alert.rolling,
                alert.threshold,
                alert.replies,
            )
            if self.metrics is not None:
                self.metrics.consistency_alert(alert.character, alert.signal)
        return Observation(
            character=character.id,
            score=score,
            traits=traits,
            breaks_character=broken,
            rolling_score=rolling_score,
            rolling_traits=rolling_traits,
            replies=replies,
            alerts=alerts,
        )

    def health(self) -> dict[str, dict[str, float | int]]:
        """Rolling means per character seen so far, for status endpoints and tests."""
        with self._lock:
            return {
                cid: {
                    "consistency": float(np.mean(t.scores)),
                    "traits": float(np.mean(t.traits)),
                    "replies": len(t.scores),
                }
                for cid, t in self._tracks.items()
                if t.scores
            }

    def reset(self, character_id: str) -> None:
        """Forget a character's window and alert state (after an operator's fix)."""
        with self._lock:
            self._tracks.pop(character_id, None)

    # -- internals ---------------------------------------------------------------

    def _check(
        self, character_id: str, track: _Track, signal: Signal, rolling: float, replies: int
    ) -> Alert | None:
        threshold = self.config.threshold_for(character_id, signal)
        if not track.armed[signal]:
            if rolling >= threshold + self.config.rearm_margin:
                track.armed[signal] = True
            return None
        if replies >= self.config.min_replies and rolling < threshold:
            track.armed[signal] = False
            return Alert(character_id, signal, rolling, threshold, replies)
        return None

    def _track(self, character_id: str, refs: _References) -> _Track:
        track = self._tracks.get(character_id)
        if track is None or track.references.fingerprint != refs.fingerprint:
            n = self.config.window
            track = _Track(refs, deque(maxlen=n), deque(maxlen=n))
            self._tracks[character_id] = track
        return track

    def _references(self, character: Character) -> _References:
        lines, traits = reference_lines(character), trait_text(character)
        fingerprint = (*lines, traits)
        with self._lock:
            track = self._tracks.get(character.id)
            if track is not None and track.references.fingerprint == fingerprint:
                return track.references
        # embed outside the lock: the embedder is slow and has its own lock
        vectors = self.embedder.embed([*lines, traits] if traits else list(lines))
        return _References(
            fingerprint=fingerprint,
            lines=vectors[: len(lines)],
            traits=vectors[len(lines)] if traits else None,
            words_per_sentence=words_per_sentence(lines),
        )
