"""Who answers: pinned, requested, addressed by name, or the closest profile."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from personae.daemon.characters import Character
from personae.daemon.engines.base import Embedder
from personae.daemon.errors import UnknownCharacterError

#: similarity bonus for the character who spoke last: conversations have continuity
CONTINUITY_BONUS = 0.05
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    character: str
    reason: str  # "pinned" | "requested" | "addressed" | "similarity" | "only"
    scores: dict[str, float]


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


class Router:
    """Embeds every character's profile once; routing a turn embeds only the utterance."""

    def __init__(self, *, embedder: Embedder, characters: Mapping[str, Character]) -> None:
        self._embedder = embedder
        self._characters = dict(characters)
        self._ids = list(self._characters)
        self._profiles = embedder.embed([c.profile_text() for c in self._characters.values()])
        self._row = {cid: i for i, cid in enumerate(self._ids)}
        # name tokens -> character; multi-word names match on their own tokens too
        self._names: list[tuple[tuple[str, ...], str]] = []
        for cid, ch in self._characters.items():
            for name in ch.names:
                tokens = tuple(_WORD.findall(name.lower()))
                if tokens:
                    self._names.append((tokens, cid))
                    if len(tokens) > 1 and len(tokens[0]) >= 3:
                        self._names.append((tokens[:1], cid))

    def addressed(self, text: str, scene: Sequence[str]) -> str | None:
        """The character named first in `text`, among those in the scene.

        Names of four letters or more also match at edit distance one, because speech
        recognition spells unfamiliar names freely ("Brahm", "Marra").
        """
        words = _WORD.findall(text.lower())
        in_scene = set(scene)
        for i in range(len(words)):
            for tokens, cid in self._names:
                if cid not in in_scene or i + len(tokens) > len(words):
                    continue
                window = words[i : i + len(tokens)]
                if all(
                    w == t or (len(t) >= 4 and _edit_distance_at_most_one(w, t))
                    for w, t in zip(window, tokens, strict=True)
                ):
                    return cid
        return None

    def scores(
        self, text: str, scene: Sequence[str], *, last_speaker: str | None = None
    ) -> dict[str, float]:
        vec = self._embedder.embed([text])[0]
        rows = self._profiles[[self._row[c] for c in scene]]
        sims = rows @ vec
        out = {cid: float(s) for cid, s in zip(scene, sims, strict=True)}
        if last_speaker in out:
            out[last_speaker] += CONTINUITY_BONUS
        return {cid: round(s, 4) for cid, s in out.items()}

    def route(
        self,
        text: str,
        scene: Sequence[str],
        *,
        pinned: str | None = None,
        requested: str | None = None,
        last_speaker: str | None = None,
    ) -> RouteDecision:
        for cid in (pinned, requested, *scene):
            if cid is not None and cid not in self._characters:
                raise UnknownCharacterError(f"unknown character {cid!r}")
        if not scene:
            raise UnknownCharacterError("the scene has no characters")
        if requested is not None:
            return RouteDecision(requested, "requested", {})
        if pinned is not None:
            return RouteDecision(pinned, "pinned", {})
        if len(scene) == 1:
            return RouteDecision(scene[0], "only", {scene[0]: 1.0})
        scores = (
            self.scores(text, scene, last_speaker=last_speaker)
            if text.strip()
            else {cid: 0.0 for cid in scene}
        )
        named = self.addressed(text, scene)
        if named is not None:
            return RouteDecision(named, "addressed", scores)
        best = max(scene, key=lambda cid: scores[cid])
        return RouteDecision(best, "similarity", scores)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
