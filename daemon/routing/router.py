"""Who answers: pinned, requested, addressed by name, the last speaker again, or the
closest profile.

A turn costs one utterance embedding, one matrix-vector product over the profiles and a
name scan that depends on the utterance, not on the scene: every name token is indexed
under its one-deletion variants, so a word finds the names within one edit of it by
looking up its own variants. What a turn reads lives in one immutable `_Index` that
`update()` replaces whole, so a concurrent turn sees the old cast or the new one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from personae.daemon.characters import Character
from personae.daemon.engines.base import Embedder
from personae.daemon.errors import UnknownCharacterError
from personae.daemon.routing.common_words import COMMON_WORDS

#: Conversations have continuity: a line with no name goes to another character than
#: the last speaker only on evidence that it is about them, a similarity of at least
#: SWITCH_SIMILARITY that beats the last speaker's by SWITCH_MARGIN. A follow-up ("Why do
#: you say that?", "Who drew it?") is about no profile; its closest one is noise (all
#: below 0.23 with all-MiniLM-L6-v2), while a new topic scores 0.3-0.5. Measured on
#: labelled lines in tests/engines/test_routing_followups.py.
SWITCH_SIMILARITY = 0.25
SWITCH_MARGIN = 0.10
#: a decision reports the scores of this many closest characters, not of the whole scene
TOP_SCORES = 8
#: name tokens this long also match at edit distance one
FUZZY_MIN_LETTERS = 4
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True, slots=True)
class RouteDecision:
    character: str
    #: "pinned" | "requested" | "addressed" | "handoff" | "continued" | "similarity" | "only"
    reason: str
    #: similarity to the utterance of the closest scene characters (at most
    #: TOP_SCORES), best first; {} when pinned or requested
    scores: dict[str, float]


@dataclass(frozen=True, slots=True)
class _Name:
    character: str
    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Index:
    characters: Mapping[str, Character]
    rows: Mapping[str, int]  # character -> row of `profiles`
    profiles: np.ndarray  # (characters, dims), L2-normalised
    names: Mapping[str, tuple[_Name, ...]]  # deletion variant -> names whose first token has it


@dataclass(frozen=True, slots=True)
class _Scene:
    """A scene resolved against one index; kept while the next turn has the same scene."""

    index: _Index
    ids: tuple[str, ...]
    members: frozenset[str]
    rows: np.ndarray  # profile row of each scene character, in scene order


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _word_matches(word: str, token: str) -> bool:
    return word == token or (
        len(token) >= FUZZY_MIN_LETTERS
        and word not in COMMON_WORDS  # "when" is no misheard "Wren"
        and _edit_distance_at_most_one(word, token)
    )


def _variants(word: str) -> set[str]:
    """The word and every string one deletion away from it.

    Two words within one edit of each other always share a variant (a substitution at
    `i` disappears when both lose letter `i`), so looking up a word's variants finds
    every token within one edit; `_word_matches` then drops the false hits ("ab"/"ba").
    """
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


def _token_keys(token: str) -> set[str]:
    return _variants(token) if len(token) >= FUZZY_MIN_LETTERS else {token}


class Router:
    """Embeds every character's profile once; routing a turn embeds only the utterance."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        characters: Mapping[str, Character],
        switch_similarity: float = SWITCH_SIMILARITY,
        switch_margin: float = SWITCH_MARGIN,
    ) -> None:
        self._embedder = embedder
        self._switch_similarity = switch_similarity
        self._switch_margin = switch_margin
        chars = dict(characters)
        profiles = embedder.embed([c.profile_text() for c in chars.values()])
        names: dict[str, tuple[_Name, ...]] = {}
        for ch in chars.values():
            _add_names(names, ch)
        self._index = _Index(
            characters=chars,
            rows={cid: i for i, cid in enumerate(chars)},
            profiles=np.ascontiguousarray(profiles, dtype=np.float32),
            names=names,
        )
        self._last_scene: _Scene | None = None
        self._write = threading.Lock()  # updates build on the index they replace

    def update(self, character: Character) -> None:
        """Add a character or replace its profile and names (a new version was deployed)."""
        vec = self._embedder.embed([character.profile_text()])
        with self._write:
            old = self._index
            cid = character.id
            names = dict(old.names)
            if cid in old.rows:
                _remove_names(names, old.characters[cid])
                rows = old.rows
                profiles = old.profiles.copy()
                profiles[rows[cid]] = vec[0]
            else:
                rows = {**old.rows, cid: len(old.rows)}
                profiles = np.vstack([old.profiles, vec.astype(np.float32)])
            _add_names(names, character)
            self._index = _Index(
                characters={**old.characters, cid: character},
                rows=rows,
                profiles=profiles,
                names=names,
            )

    def addressed(self, text: str, scene: Sequence[str]) -> str | None:
        """The character named first in `text`, among those in the scene.

        Names of four letters or more also match at edit distance one, because speech
        recognition spells unfamiliar names freely ("Brahm", "Marra"). Two characters
        named by the same words: the one earlier in `scene` wins.
        """
        return _find_name(self._index, text, set(scene), scene)

    def scores(self, text: str, scene: Sequence[str], *, top: int = TOP_SCORES) -> dict[str, float]:
        """Similarity of `text` to the `top` closest scene characters, best first."""
        view = self._scene(self._index, scene)
        return _top_scores(view.ids, self._similarities(view, text), top)

    def route(
        self,
        text: str,
        scene: Sequence[str],
        *,
        pinned: str | None = None,
        requested: str | None = None,
        last_speaker: str | None = None,
        handoff: str | None = None,
    ) -> RouteDecision:
        """`handoff`: the character a line between characters just named ("Ask Mara."),
        who takes a line that names no one over the last speaker and the closest."""
        index = self._index
        for cid in (pinned, requested):
            if cid is not None and cid not in index.characters:
                raise UnknownCharacterError(f"unknown character {cid!r}")
        view = self._scene(index, scene)
        if not view.ids:
            raise UnknownCharacterError("the scene has no characters")
        if requested is not None:
            return RouteDecision(requested, "requested", {})
        if pinned is not None:
            return RouteDecision(pinned, "pinned", {})
        if len(view.ids) == 1:
            return RouteDecision(view.ids[0], "only", {view.ids[0]: 1.0})
        if text.strip():
            sims = self._similarities(view, text)
        else:
            sims = np.zeros(len(view.ids), dtype=np.float32)
        scores = _top_scores(view.ids, sims, TOP_SCORES)
        named = _find_name(index, text, view.members, view.ids)
        if named is not None:
            return RouteDecision(named, "addressed", scores)
        if handoff is not None and handoff in view.members:
            return RouteDecision(handoff, "handoff", scores)
        best = int(np.argmax(sims))
        if last_speaker is not None and last_speaker in view.members:
            last = float(sims[view.rows == index.rows[last_speaker]][0])
            top = float(sims[best])
            if view.ids[best] != last_speaker and not (
                top >= self._switch_similarity and top - last >= self._switch_margin
            ):
                scores.setdefault(last_speaker, round(last, 4))
                return RouteDecision(last_speaker, "continued", scores)
        return RouteDecision(view.ids[best], "similarity", scores)

    def _scene(self, index: _Index, scene: Sequence[str]) -> _Scene:
        """The scene checked and resolved to profile rows; reused while it repeats."""
        ids = tuple(scene)
        last = self._last_scene
        if last is not None and last.index is index and last.ids == ids:
            return last
        members = frozenset(ids)
        unknown = members - index.characters.keys()
        if unknown:
            raise UnknownCharacterError(f"unknown character {min(unknown)!r}")
        rows = np.fromiter((index.rows[c] for c in ids), dtype=np.intp, count=len(ids))
        view = _Scene(index=index, ids=ids, members=members, rows=rows)
        self._last_scene = view
        return view

    def _similarities(self, view: _Scene, text: str) -> np.ndarray:
        """Cosine of the utterance to each scene character, in scene order."""
        vec = self._embedder.embed([text])[0]
        profiles = view.index.profiles
        if 4 * len(view.rows) < len(profiles):  # a small scene in a large cast: gather first
            sims = profiles[view.rows] @ vec
        else:  # one pass over every profile beats copying most of them
            sims = (profiles @ vec)[view.rows]
        return sims


def _find_name(
    index: _Index, text: str, members: Container[str], order: Sequence[str]
) -> str | None:
    words = _WORD.findall(text.lower())
    for i, word in enumerate(words):
        hits: set[str] = set()
        for key in (word,) if word in COMMON_WORDS else _variants(word):
            for name in index.names.get(key, ()):
                if name.character in hits or name.character not in members:
                    continue
                end = i + len(name.tokens)
                if end <= len(words) and all(
                    _word_matches(w, t) for w, t in zip(words[i:end], name.tokens, strict=True)
                ):
                    hits.add(name.character)
        if len(hits) == 1:
            return hits.pop()
        if hits:  # several characters answer to these words: the first in the scene
            return next(cid for cid in order if cid in hits)
    return None


def _top_scores(ids: Sequence[str], sims: np.ndarray, top: int) -> dict[str, float]:
    if len(sims) > top:
        picked = np.argpartition(-sims, top - 1)[:top]
        order = picked[np.argsort(-sims[picked], kind="stable")]
    else:
        order = np.argsort(-sims, kind="stable")
    return {ids[i]: round(float(sims[i]), 4) for i in order}


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


def _add_names(names: dict[str, tuple[_Name, ...]], character: Character) -> None:
    for tokens in _name_tokens(character):
        entry = _Name(character.id, tokens)
        for key in _token_keys(tokens[0]):
            names[key] = (*names.get(key, ()), entry)


def _remove_names(names: dict[str, tuple[_Name, ...]], character: Character) -> None:
    for tokens in _name_tokens(character):
        for key in _token_keys(tokens[0]):
            kept = tuple(n for n in names.get(key, ()) if n.character != character.id)
            if kept:
                names[key] = kept
            else:
                names.pop(key, None)
