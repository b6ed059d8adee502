"""The characters a session may address: its scene, as the connection's key sees it.

The scene is the session's `characters` (the whole cast when it names none), narrowed
to the characters the key may use. Every event that names a character is checked here
before anything is queued or written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from personae.daemon.auth import ForbiddenError, Principal
from personae.daemon.errors import UnknownCharacterError
from personae.sdk import protocol as p

if TYPE_CHECKING:
    from personae.daemon.service import Service


class SessionScene:
    def __init__(
        self, service: Service, *, principal: Principal, config: Callable[[], p.Session]
    ) -> None:
        self._service = service
        self._principal = principal
        self._config = config

    def characters(self) -> list[str]:
        """The scene's characters this key may use (the session's list, or the cast)."""
        scene = self._config().characters or self._service.cast
        return self._principal.visible(scene)

    def check(self, ids: list[str]) -> None:
        """Each of `ids` is a character of the cast that the key may use."""
        cast = self._service.cast
        visible = self._principal.visible(cast)
        unknown = [c for c in ids if c not in cast]
        if unknown:
            raise UnknownCharacterError(
                f"unknown character {unknown[0]!r}; known: {', '.join(sorted(visible))}"
            )
        forbidden = [c for c in ids if not self._principal.may_use(c)]
        if forbidden:
            raise ForbiddenError(
                f"key {self._principal.key_id} may not use character {forbidden[0]!r}",
                code="forbidden_character",
            )

    def hotwords(self) -> list[str]:
        """The scene's names, which the STT is told to expect."""
        return [n for cid in self.characters() for n in self._service.cast[cid].names]
