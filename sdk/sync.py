"""A blocking wrapper over the async client, for game scripts without an event loop.

with SyncClient() as npc:
    reply = npc.say("Mara, where is the old mill?")
    print(reply.character, reply.text)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from personae.sdk.client import DEFAULT_URL, Exchange, Reply, Session, connect
from personae.sdk.framing import Framing

T = TypeVar("T")


class SyncClient:
    """Runs the async Session on a private event loop in a daemon thread."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        framing: Framing | str = Framing.MSGPACK,
        **session_fields: Any,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="personae-sdk", daemon=True
        )
        self._thread.start()
        try:
            self.session: Session = self._call(connect(url, framing=framing, **session_fields))
        except BaseException:
            self._stop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def update(self, **fields: Any) -> Any:
        return self._call(self.session.update(**fields))

    def say(self, text: str, *, character: str | None = None, timeout: float = 120.0) -> Reply:
        return self._call(self.session.say(text, character=character, timeout=timeout))

    def speak(self, pcm16: bytes, *, timeout: float = 120.0) -> Reply:
        return self._call(self.session.speak(pcm16, timeout=timeout))

    def converse(
        self, characters: Iterable[str], topic: str, *, lines: int = 4, timeout: float = 300.0
    ) -> Exchange:
        """Characters talk to each other about `topic`; returns the whole exchange."""
        return self._call(self.session.converse(characters, topic, lines=lines, timeout=timeout))

    def game_event(self, name: str, description: str = "", **kw: Any) -> None:
        self._call(self.session.game_event(name, description, **kw))

    def close(self) -> None:
        try:
            self._call(self.session.close(), timeout=5)
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
