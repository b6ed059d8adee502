"""The reply started before the player's turn ends (settings.speculative_reply).

    pause: early transcript ─► heard(text) ─► route, cast, prepare ─► LLM deltas, buffered
    player goes on / new turn / clear / barge-in / close ─► drop(reason): nothing was sent
    turn ends ─► the reply's prompt ─► take(request): the buffered stream, or None

At the player's first pause the listener already transcribes the turn so far
(incremental.py). From that text the speculation routes and starts generating exactly
as the reply would, but sends nothing: its deltas wait in a buffer. When the real reply
has built its prompt, it asks `take(request)`: if the speculative prompt is the same
(the player's line compared normalised: case, punctuation, spaces), the reply reads the
buffer and the rest of the same generation instead of starting a new one; every delta
still passes the reply's moderation and splitter, and only then is anything sent.
Anything else (another character, a plan, the player's words heard differently, a
state change from the line itself) drops the speculation before the reply generates.

It only starts while the session is idle (no reply in progress, no turn queued) and a
reply slot is free, so it uses CPU nobody else is waiting for; a dropped one costs the
LLM time it ran (metrics: speculative_replies{outcome}, speculation_dropped_seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from personae.daemon.engines.base import GenerationRequest
from personae.daemon.monitoring import Metrics
from personae.daemon.session import openai_session
from personae.daemon.session.finishing import graced
from personae.daemon.session.prompt import Turn
from personae.sdk import protocol as p

if TYPE_CHECKING:
    from personae.daemon.service import Service

log = logging.getLogger("personae.session")

#: the early text's prompt, and how to let go of what preparing it took (an adapter pin)
Prepared = tuple[GenerationRequest, Callable[[], None]]
#: early transcript -> its reply's prompt, or None when no reply would be made
Prepare = Callable[[str], Awaitable[Prepared | None]]
#: a prompt -> the LLM's deltas for it (`Service.stream` on the "llm" stage)
Generate = Callable[[GenerationRequest], AsyncIterator[str]]

_WORD = re.compile(r"[\w']+")


def normalised(text: str) -> str:
    """What two transcripts of the same words share: lower case, words only."""
    return " ".join(_WORD.findall(text.lower()))


def same_prompt(guess: GenerationRequest, real: GenerationRequest) -> bool:
    """The same request, the player's lines compared normalised (a turn re-decoded at
    its end may differ from the early text in case or punctuation)."""
    if guess == real:
        return True
    if (guess.params, guess.adapter, guess.seed) != (real.params, real.adapter, real.seed):
        return False
    if len(guess.messages) != len(real.messages):
        return False
    for a, b in zip(guess.messages, real.messages, strict=True):
        if a.role != b.role:
            return False
        if a.content != b.content and (
            a.role != "user" or normalised(a.content) != normalised(b.content)
        ):
            return False
    return True


@dataclass(slots=True)
class _Guess:
    text: str
    started: float
    request: GenerationRequest | None = None
    task: asyncio.Task[None] | None = None
    deltas: list[str] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: when generation began (None: still routing and preparing)
    generating: float | None = None
    ended: float | None = None


class Speculation:
    def __init__(
        self,
        *,
        enabled: bool,
        prepare: Prepare,
        generate: Generate,
        idle: Callable[[], bool],
        metrics: Metrics,
    ) -> None:
        """`idle()` says whether a speculation may start now (no reply made or waiting,
        a reply slot free)."""
        self.enabled = enabled
        self._prepare = prepare
        self._generate = generate
        self._idle = idle
        self._metrics = metrics
        self._guess: _Guess | None = None
        #: guesses dropped but still stopping (the session waits for them at close)
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def text(self) -> str | None:
        """The early transcript being speculated on, if any."""
        return self._guess.text if self._guess is not None else None

    def heard(self, text: str) -> None:
        """The turn so far, transcribed at a pause: speculate on it (a guess on the same
        words goes on; one on other words is dropped first)."""
        if not self.enabled or not text.strip():
            return
        if self._guess is not None:
            if normalised(self._guess.text) == normalised(text):
                return
            self.drop("changed")
        if not self._idle():
            return
        guess = _Guess(text=text, started=time.monotonic())
        guess.task = asyncio.create_task(self._run(guess), name="speculative reply")
        self._guess = guess

    def drop(self, reason: str) -> None:
        """Stop the guess: the player went on, a new turn, a clear, a barge-in, the end."""
        guess, self._guess = self._guess, None
        if guess is not None:
            self._stop(guess, reason)

    def _stop(self, guess: _Guess, reason: str) -> None:
        self._count_dropped(guess, reason)
        if guess.task is not None and not guess.task.done():
            guess.task.cancel()
            self._stopping.add(guess.task)
            guess.task.add_done_callback(self._stopping.discard)

    def take(self, request: GenerationRequest) -> AsyncIterator[str] | None:
        """The reply is about to generate `request`: the speculative deltas if they are
        for the same prompt (the guess is handed over), else None (and it is dropped).
        A guess still preparing (it began before the reply's own preparation, so it is
        nearly done) is waited for; if it then differs, the stream generates `request`."""
        guess = self._guess
        if guess is None:
            return None
        if guess.error is not None or (guess.done and guess.request is None):
            self.drop("failed")
            return None
        if guess.request is not None and not same_prompt(guess.request, request):
            self.drop("mismatch")
            return None
        self._guess = None
        return self._replay(guess, request)

    async def close(self) -> None:
        self.drop("closed")
        tasks = list(self._stopping)
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the guess itself ---

    async def _run(self, guess: _Guess) -> None:
        try:
            prepared = await self._prepare(guess.text)
            if prepared is None:
                return
            request, release = prepared
            try:
                guess.request = request
                guess.changed.set()
                guess.generating = time.monotonic()
                stream = self._generate(request)
                async with contextlib.aclosing(stream) as deltas:  # type: ignore[type-var]
                    async for delta in deltas:
                        guess.deltas.append(delta)
                        guess.changed.set()
            finally:
                release()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the reply, if made, generates on its own
            guess.error = exc
            log.debug("speculative reply failed: %s", exc)
        finally:
            guess.done = True
            guess.ended = time.monotonic()
            guess.changed.set()

    async def _replay(self, guess: _Guess, request: GenerationRequest) -> AsyncIterator[str]:
        """The guess's deltas so far, then the rest as they come (or, when the guess
        proves to be for another prompt, `request` generated afresh)."""
        try:
            while guess.request is None and not guess.done:
                guess.changed.clear()
                await guess.changed.wait()
            if guess.request is None or not same_prompt(guess.request, request):
                self._stop(guess, "mismatch" if guess.request is not None else "failed")
                async with contextlib.aclosing(self._generate(request)) as fresh:  # type: ignore[type-var]
                    async for delta in fresh:
                        yield delta
                return
            self._metrics.speculation("kept")
            sent = 0
            while True:
                while sent < len(guess.deltas):
                    sent += 1
                    yield guess.deltas[sent - 1]
                if guess.done:
                    if guess.error is not None:
                        raise guess.error
                    return
                guess.changed.clear()
                await guess.changed.wait()
        finally:
            if guess.task is not None and not guess.task.done():
                guess.task.cancel()  # the reply stopped reading: so does the generation

    def _count_dropped(self, guess: _Guess, reason: str) -> None:
        seconds = 0.0
        if guess.generating is not None:
            seconds = (guess.ended or time.monotonic()) - guess.generating
        self._metrics.speculation(
            "dropped", reason=reason, seconds=seconds, tokens=len(guess.deltas)
        )


def reply_preparer(
    service: Service,
    *,
    scene: Callable[[], list[str]],
    config: Callable[[], p.Session],
    history: list[Turn],
    player_id: Callable[[], str],
    last_speaker: Callable[[], str | None],
    handoff: Callable[[], str | None],
) -> Prepare:
    """The prompt the session's reply to `text` would get, made as the turn (turns.py)
    and the responder make it (route, casting, adapter, prepare) without consuming
    anything: no handoff taken, no store written, nothing sent. The callables read the
    session's state when the early text comes: its scene, its `session` config, its
    player, the last character who spoke and the handoff waiting for the next line."""
    svc = service

    async def prepare(text: str) -> Prepared | None:
        characters = scene()
        if not characters:
            return None
        session = config()
        decision = await svc.run(
            "router",
            lambda: svc.router.route(
                text,
                characters,
                pinned=session.pinned_character,
                last_speaker=last_speaker(),
                handoff=handoff(),
            ),
        )
        casting = await svc.conversation.casting(decision.character, player_id())
        adapter = await svc.run("adapters", svc.adapters.acquire, casting.character)
        try:
            options = openai_session.with_scene_direction(p.ResponseOptions(), session)
            turn = await svc.conversation.prepare(
                casting.character,
                [*history, Turn("player", text)],
                player_id(),
                instructions=options.instructions,
                adapter=adapter,
            )
        except BaseException:
            svc.adapters.release(adapter)
            raise
        # with the budget the reply's engine call gets (the finishing grace included)
        return graced(turn.request, svc.settings), lambda: svc.adapters.release(adapter)

    return prepare
