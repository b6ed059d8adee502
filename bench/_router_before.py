"""The router as it was before the name index and top-k scores (issue #7).

Kept only so `bench/routing.py` can measure the old and the new side by side in one
run: every word checked against every scene name in Python, every scene character's
score built into a dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from personae.daemon.characters import Character
from personae.daemon.engines.base import Embedder
from personae.daemon.errors import UnknownCharacterError
from personae.daemon.routing.router import RouteDecision

#: similarity bonus for the character who spoke last: conversations have continuity
CONTINUITY_BONUS = 0.05
_WORD = re.compile(r"[a-z0-9']+")


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


class LinearRouter:
    """Embeds every character's profile once; routing a turn embeds only the utterance."""

    def __init__(self, *, embedder: Embedder, characters: Mapping[str, Character]) -> None:
        self._embedder = embedder
        self._characters = dict(characters)
        ids = list(self._characters)
        profiles = embedder.embed([c.profile_text() for c in self._characters.values()])
        # swapped as one tuple so a concurrent update never shows a half-built index
        self._index = ({cid: i for i, cid in enumerate(ids)}, profiles)
        self._names = {cid: _name_tokens(ch) for cid, ch in self._characters.items()}

    def update(self, character: Character) -> None:
        """Add a character or replace its profile (a new version was deployed)."""
        vec = self._embedder.embed([character.profile_text()])
        rows, profiles = self._index
        if character.id in rows:
            profiles = profiles.copy()
            profiles[rows[character.id]] = vec[0]
        else:
            rows = {**rows, character.id: len(rows)}
            profiles = np.vstack([profiles, vec])
        self._names[character.id] = _name_tokens(character)
        self._characters[character.id] = character
        self._index = (rows, profiles)

    def addressed(self, text: str, scene: Sequence[str]) -> str | None:
        """The character named first in `text`, among those in the scene.

        Names of four letters or more also match at edit distance one, because speech
        recognition spells unfamiliar names freely ("Brahm", "Marra").
        """
        words = _WORD.findall(text.lower())
        candidates = [(tokens, cid) for cid in scene for tokens in self._names.get(cid, ())]
        for i in range(len(words)):
            for tokens, cid in candidates:
                if i + len(tokens) > len(words):
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
        index, profiles = self._index
        sims = profiles[[index[c] for c in scene]] @ vec
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


def _name_tokens(character: Character) -> list[tuple[str, ...]]:
    """Token sequences a player may address the character by; multi-word names also
    match on their first word ("Mara Quill" -> "mara")."""
    out: list[tuple[str, ...]] = []
    for name in character.names:
        tokens = tuple(_WORD.findall(name.lower()))
        if tokens:
            out.append(tokens)
            if len(tokens) > 1 and len(tokens[0]) >= 3:
                out.append(tokens[:1])
    return out
