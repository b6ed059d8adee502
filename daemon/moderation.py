"""Moderation of player input and character output: a block list by default, pluggable.

    moderator = moderator_for(settings)          # by name: "blocklist", "none", "pkg.mod:make"
    verdict = moderator.check(text, source="player", character="mara")
    if not verdict.allowed: ...                  # verdict.category says why, never the text

The session checks every typed line, transcript and per-reply instruction before it
reaches the prompt or the memory, and the reply as it is generated (the running text
at each delta) before it is sent or spoken. A plug-in is a factory `(settings) ->
Moderator` named `module:attribute`; it must be fast (it runs on the event loop for
every delta) or check only what it must.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from personae.daemon.errors import ConfigError, PersonaeError

Source = Literal["player", "character"]


class ContentBlockedError(PersonaeError):
    """A reply the moderator stopped; the reply ends `failed` / `content_filter`."""

    code = "content_blocked"
    retryable = True


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    #: a short label ("blocklist"), safe to log and to send; never the offending text
    category: str | None = None


ALLOWED = Verdict(True)


class Moderator(ABC):
    name: str = "moderator"

    @abstractmethod
    def check(self, text: str, *, source: Source, character: str | None = None) -> Verdict:
        """Whether `text` may go into the conversation."""


class NoModeration(Moderator):
    name = "none"

    def check(self, text: str, *, source: Source, character: str | None = None) -> Verdict:
        return ALLOWED


def _fold(text: str) -> str:
    """Case, width and accents folded; anything not a letter or digit becomes a space."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " " + " ".join(re.sub(r"[^\w]+|_", " ", text).split()) + " "


class BlockList(Moderator):
    """Refuses text containing any listed word or phrase, as whole words.

    Matching ignores case, accents and punctuation ("D.a-m n" does not match "damn",
    but "DAMN!" and "dámn" do).
    """

    name = "blocklist"

    def __init__(self, words: Iterable[str]) -> None:
        folded = sorted({_fold(w).strip() for w in words if w.strip()} - {""})
        self.size = len(folded)
        self._pattern = (
            re.compile(" (?:" + "|".join(re.escape(w) for w in folded) + ") ") if folded else None
        )

    @classmethod
    def from_settings(cls, settings) -> BlockList:
        words = list(settings.moderation_words)
        path: Path | None = settings.moderation_words_file
        if path is not None:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"moderation_words_file {path}: {exc}") from exc
            words += [w for w in lines if w.strip() and not w.lstrip().startswith("#")]
        return cls(words)

    def check(self, text: str, *, source: Source, character: str | None = None) -> Verdict:
        if self._pattern is not None and self._pattern.search(_fold(text)):
            return Verdict(False, "blocklist")
        return ALLOWED


#: moderators by name; plug-ins may also be named "module:factory"
MODERATORS: dict[str, Callable[..., Moderator]] = {
    "blocklist": BlockList.from_settings,
    "none": lambda settings: NoModeration(),
}


def create_moderator(settings) -> Moderator:
    name: str = settings.moderation
    factory = MODERATORS.get(name)
    if factory is None and ":" in name:
        module, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"moderation plug-in {name!r} cannot be loaded: {exc}") from exc
    if factory is None:
        raise ConfigError(
            f"unknown moderation {name!r}; available: {', '.join(sorted(MODERATORS))} "
            "or 'module:factory'"
        )
    moderator = factory(settings)
    if not isinstance(moderator, Moderator):
        raise ConfigError(f"moderation plug-in {name!r} did not return a Moderator")
    return moderator


_cache: dict[int, tuple[object, Moderator]] = {}


def moderator_for(settings) -> Moderator:
    """One moderator per settings object (the service's), built on first use."""
    hit = _cache.get(id(settings))
    if hit is None or hit[0] is not settings:
        if len(_cache) > 64:
            _cache.clear()
        hit = _cache[id(settings)] = (settings, create_moderator(settings))
    return hit[1]
