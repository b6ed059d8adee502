"""Prefill a speaker's next prompt while the player hears the end of its reply.

Once a reply has gone out, its speaker's next prompt is known as far as the character,
the examples and the history with this reply: the LLM prefills that much (an engine
that keeps a prefix cache keeps it), and the next turn prefills only its new context
and the player's words. An optimisation only: when it fails, the next reply prefills
it all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

from personae.daemon.adapters import AdapterCache
from personae.daemon.characters import Character
from personae.daemon.engines.base import ChatMessage, GenerationRequest, LLMEngine
from personae.daemon.errors import PersonaeError
from personae.daemon.session.conversation import Conversation, Run
from personae.daemon.session.prompt import Turn
from personae.daemon.settings import Settings

log = logging.getLogger("personae.session")

#: after a reply, how long the session waits before prefilling its next prompt
PRIME_DELAY_S = 0.15
#: how often a scene warm-up waiting for a reply to end looks again
WARM_POLL_S = 0.05


class Primer:
    def __init__(
        self,
        *,
        settings: Settings,
        conversation: Conversation,
        adapters: AdapterCache,
        llm: LLMEngine,
        run: Run,
        session_id: str,
    ) -> None:
        self._settings = settings
        self._conversation = conversation
        self._adapters = adapters
        self._llm = llm
        self._run = run
        self._session_id = session_id
        self._priming: set[asyncio.Future[None]] = set()
        self._prefilling: set[asyncio.Future[None]] = set()  # those past their delay
        self._closing = False
        self._warming: asyncio.Task[None] | None = None
        #: characters this session warmed or heard from, most recent last (the LRU order
        #: a scene larger than settings.llm_warm_scene_max is warmed in)
        self._recent: OrderedDict[str, None] = OrderedDict()

    def used(self, character_id: str) -> None:
        """`character_id` just spoke: first in line when its scene is warmed next."""
        self._recent[character_id] = None
        self._recent.move_to_end(character_id)
        while len(self._recent) > 1024:  # ids of a long session's scenes, bounded
            self._recent.popitem(last=False)

    def warm(
        self,
        characters: Sequence[Character],
        history: Sequence[Turn],
        *,
        busy: Callable[[], bool],
    ) -> list[str]:
        """Make a new scene's characters warm in the background: each one's adapter
        resident and its prompt as far as it is known prefilled, one after another, the
        most recently used first, at most settings.llm_warm_scene_max of them. A warm-up
        never starts while `busy()` (a reply is being made): it waits for the reply to
        end, and the transformers engine gives the model up to a reply mid-prefill. A
        newer scene replaces a warm-up still going on. Returns the ids it will warm."""
        s = self._settings
        if s.llm_warm_scene_max <= 0 or not s.prompt_context_late or self._closing:
            return []
        rank = {cid: i for i, cid in enumerate(reversed(self._recent))}
        ordered = sorted(characters, key=lambda ch: rank.get(ch.id, len(rank)))
        chosen = ordered[: s.llm_warm_scene_max]
        if self._warming is not None:
            self._warming.cancel()  # the old scene's characters may have left
        prompts = [(ch, self._conversation.primer(ch, history)) for ch in chosen]
        task = asyncio.ensure_future(self._warm(prompts, busy))
        self._warming = task
        self._priming.add(task)
        task.add_done_callback(self._priming.discard)
        return [ch.id for ch in chosen]

    async def _warm(
        self, prompts: list[tuple[Character, list[ChatMessage]]], busy: Callable[[], bool]
    ) -> None:
        await asyncio.sleep(PRIME_DELAY_S)  # a client that leaves at once costs nothing
        for ch, messages in prompts:
            while busy():  # noqa: ASYNC110 - a reply's end has no event to wait on; a poll is cheap
                await asyncio.sleep(WARM_POLL_S)
            if self._closing:
                return
            await self._prefill(ch, messages)
            self.used(ch.id)

    def prime(self, character: Character, history: Sequence[Turn]) -> None:
        """Prefill `character`'s next prompt after `history`, beside the next turn."""
        s = self._settings
        if not (s.llm_prime_history and s.prompt_context_late):
            return
        messages = self._conversation.primer(character, history)
        # not awaited: it runs beside the next turn. A closing session cancels it while
        # it still waits to start; a prefill under way (a fraction of a second, its
        # adapter pinned) is waited for
        task = asyncio.ensure_future(self._prime(character, messages))
        self._priming.add(task)
        task.add_done_callback(self._priming.discard)

    def stop(self) -> None:
        """The session is closing: no prefill starts from now on."""
        self._closing = True

    async def close(self) -> None:
        """Cancel the prefills still waiting to start; wait for those under way."""
        self._closing = True
        for task in self._priming - self._prefilling:
            task.cancel()  # still waiting to start: the player has gone
        if self._priming:  # a prefill under way holds a pinned adapter until it is done
            await asyncio.wait(set(self._priming), timeout=5)

    async def _prime(self, ch: Character, messages: list[ChatMessage]) -> None:
        # a client that leaves when its reply is done (one question per connection)
        # has gone by then: its prefill would only slow the other sessions down
        await asyncio.sleep(PRIME_DELAY_S)
        if self._closing:
            return
        await self._prefill(ch, messages)

    async def _prefill(self, ch: Character, messages: list[ChatMessage]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._prefilling.add(task)  # under way: a closing session waits for it
        try:
            try:
                adapter = await self._run("adapters", self._adapters.acquire, ch)
            except PersonaeError as exc:
                log.debug("session %s: no priming for %s: %s", self._session_id, ch.id, exc)
                return
            try:
                request = GenerationRequest(
                    messages=messages, params=ch.generation, adapter=adapter
                )
                await self._run("llm", self._llm.prime, request)
            except PersonaeError as exc:  # an optimisation only: the next reply prefills it
                log.debug("session %s: priming %s failed: %s", self._session_id, ch.id, exc)
            finally:
                self._adapters.release(adapter)
        finally:
            self._prefilling.discard(task)
