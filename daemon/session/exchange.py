"""Scenes where characters talk to each other: one `npc.converse` exchange at a time.

    npc.converse ─► check (present, bounds, topic, none running) ─► queued as a job
        respond loop ─► npc.exchange.started
                        line 0: first character ─► reply (its adapter, prompt, voice)
                        line i: whom line i-1 named, else (three or more) whom it
                                is clearly about, else who spoke least recently
                        ... npc.exchange.line after each line's response.done ...
                        ─► npc.exchange.done (finished / interrupted / error, hand-off)

Each line is an ordinary reply of the speaking character (`Responder.reply`): the game
gets the usual response events with that character's id, in order, and each line starts
once the previous one's audio has played out. The lines join the session's history (every
prompt shows them as "(Bram says) ..."), and each listener in the scene remembers what
it heard of them, so a later reply, in this session or another, can refer to them.

The player can join in at any moment: speech (barge-in), a typed line, a commit, a
`response.cancel` or a pending `response.create` stops the exchange; no further line is
generated and the line being spoken is cut as any reply is. If the last heard line names
another character in the scene ("Ask Mara."), the player's next line with no name goes
to them (`npc.route` reason "handoff").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from personae.daemon.errors import ClientError, LimitExceededError
from personae.daemon.routing.router import SWITCH_MARGIN, SWITCH_SIMILARITY
from personae.daemon.session.prompt import Turn
from personae.sdk import protocol as p

if TYPE_CHECKING:
    from personae.daemon.session.conversation import Conversation
    from personae.daemon.session.outbox import Outbox
    from personae.daemon.session.reply import ActiveResponse, Responder

#: how important a line overheard in an exchange is to the listeners' memory (0..1)
OVERHEARD_IMPORTANCE = 0.45
#: a prompt's cue for each line; {others} are the other characters, {topic} the topic
OPENING = (
    "You are with {others}. Start talking to them about {topic}, in one or two short sentences."
)
LINE = (
    "You are with {others}, talking about {topic}. Answer what was just said, in one or "
    "two short sentences."
)
CLOSING = (
    "You are with {others}, talking about {topic}. Answer what was just said and end the "
    "talk, in one or two short sentences."
)


@dataclass(frozen=True, slots=True)
class ExchangeJob:
    """A checked `npc.converse`, waiting in the session's job queue."""

    id: str
    characters: tuple[str, ...]
    topic: str
    lines: int


@dataclass(slots=True)
class _Running:
    job: ExchangeJob
    stopped: bool = False
    #: set when the exchange is stopped, to end a wait between lines
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: a line is being generated or spoken
    speaking: bool = False
    spoken: list[str] = field(default_factory=list)


def check(
    event: p.NpcConverse,
    *,
    scene: Sequence[str],
    known: Callable[[list[str]], None],
    moderate: Callable[[str], None],
    max_lines: int,
) -> ExchangeJob:
    """The exchange `event` asks for, or a ClientError that names what is wrong with it.
    `known(ids)` raises for characters not loaded (or not allowed to this key),
    `moderate(text)` for a topic moderation refuses (as it does instructions)."""
    ids = list(dict.fromkeys(event.characters))
    if len(ids) < 2:
        raise ClientError(
            f"an exchange needs two or more different characters, got {len(ids)}",
            code="exchange_too_few_characters",
        )
    known(ids)
    absent = [c for c in ids if c not in scene]
    if absent:
        raise ClientError(
            f"character {absent[0]!r} is not in the scene; present: {', '.join(scene)}",
            code="character_not_present",
        )
    if not 1 <= event.lines <= max_lines:
        raise LimitExceededError(
            f"an exchange has 1 to {max_lines} lines, got {event.lines}",
            code="exchange_lines_out_of_range",
        )
    topic = " ".join(event.topic.split())
    if not topic:
        raise ClientError("an exchange needs a topic", code="exchange_topic_empty")
    moderate(topic)
    return ExchangeJob(id=p.new_id("exch"), characters=tuple(ids), topic=topic, lines=event.lines)


def next_speaker(
    characters: Sequence[str],
    spoken: Sequence[str],
    named: str | None,
    closeness: Mapping[str, float] | None = None,
    *,
    switch: tuple[float, float] = (SWITCH_SIMILARITY, SWITCH_MARGIN),
) -> str:
    """Who says the next line: whom the last line named (not its own speaker); else the
    one the last line is clearly about (`closeness`: similarity of the line to each
    listener's profile, at least `switch[0]` and ahead of the next in turn by
    `switch[1]`, the router's rule for changing speaker); else who has spoken least
    recently (first the characters who have not spoken, in order)."""
    if not spoken:
        return characters[0]
    last = spoken[-1]
    if named is not None and named != last and named in characters:
        return named
    when = {c: i for i, c in enumerate(spoken)}
    waiting = [c for c in characters if c != last]
    due = min(waiting, key=lambda c: (when.get(c, -1), characters.index(c)))
    if closeness:
        best = max(waiting, key=lambda c: closeness.get(c, -1.0))
        top = closeness.get(best, -1.0)
        if best != due and top >= switch[0] and top - closeness.get(due, -1.0) >= switch[1]:
            return best
    return due


class Exchanges:
    """The session's exchanges: the one asked for or running, its lines, its end."""

    def __init__(
        self,
        *,
        replies: Responder,
        outbox: Outbox,
        conversation: Conversation,
        history: list[Turn],
        names: Callable[[], dict[str, str]],
        addressed: Callable[[str, Sequence[str]], str | None],
        scene: Callable[[], list[str]],
        player_id: Callable[[], str],
        player_waiting: Callable[[], bool],
        direction: Callable[[p.ResponseOptions], p.ResponseOptions],
        closeness: Callable[[str, Sequence[str]], Awaitable[dict[str, float]]],
        switch: tuple[float, float] = (SWITCH_SIMILARITY, SWITCH_MARGIN),
    ) -> None:
        """`addressed(text, among)` is the character `text` names first (the router's);
        `player_waiting()` whether a player turn or response waits behind the exchange;
        `direction(options)` adds the session's scene direction to a line's options;
        `closeness(text, among)` is the similarity of a line to each character of
        `among` (the router's scores), asked with three or more characters, and
        `switch` the router's (similarity, margin) for changing speaker."""
        self._replies = replies
        self._outbox = outbox
        self._conversation = conversation
        self._history = history
        self._names = names
        self._addressed = addressed
        self._scene = scene
        self._player_id = player_id
        self._player_waiting = player_waiting
        self._direction = direction
        self._closeness = closeness
        self._switch = switch
        #: the exchange accepted and not yet over (queued or running)
        self._pending: ExchangeJob | None = None
        self._running: _Running | None = None
        self._stop_next = False

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def accept(self, job: ExchangeJob) -> None:
        if self._pending is not None:
            raise ClientError(
                f"exchange {self._pending.id} is still going; wait for its npc.exchange.done",
                code="exchange_in_progress",
            )
        self._pending = job
        self._stop_next = False

    def withdraw(self, job: ExchangeJob) -> None:
        """`job` was accepted but could not be queued."""
        if self._pending is job:
            self._pending = None

    def interrupt(self) -> bool:
        """The player joined in: no further line. True when a line is being spoken, which
        the caller cuts (it is the Responder's current reply)."""
        if self._pending is None:
            return False
        if self._running is None:
            self._stop_next = True  # still queued: it ends before its first line
            return False
        self._running.stopped = True
        self._running.wake.set()
        return self._running.speaking

    async def run(self, job: ExchangeJob) -> str | None:
        """Speak the exchange's lines; returns the character handed the next player line."""
        state = _Running(job, stopped=self._stop_next)
        self._running = state
        self._outbox.control(
            p.NpcExchangeStarted(
                exchange_id=job.id,
                characters=list(job.characters),
                topic=job.topic,
                lines=job.lines,
            )
        )
        reason = "finished"
        named: str | None = None
        closeness: dict[str, float] | None = None
        heard = 0
        try:
            for index in range(job.lines):
                if state.stopped or self._player_waiting():
                    reason = "interrupted"
                    break
                present = [c for c in job.characters if c in self._scene()]
                if len(present) < 2:  # a scene change took them away
                    reason = "interrupted"
                    break
                speaker = next_speaker(present, state.spoken, named, closeness, switch=self._switch)
                response = await self._line(state, speaker, index)
                text = self._heard(response)
                listeners = [c for c in present if c != speaker]
                named, closeness = None, None
                if text:
                    heard += 1
                    named = self._addressed(text, listeners)
                    await self._overheard(speaker, text)
                    if named is None and len(listeners) > 1 and index + 1 < job.lines:
                        closeness = await self._closeness(text, listeners)
                self._outbox.control(
                    p.NpcExchangeLine(
                        exchange_id=job.id,
                        index=index,
                        character=speaker,
                        response_id=response.info.id,
                        status=response.info.status,  # type: ignore[arg-type]
                        text=text,
                        adapter=response.request.adapter if response.request else None,
                    )
                )
                if response.info.status == "failed":
                    reason = "error"
                    break
                if response.info.status != "completed":
                    reason = "interrupted"
                    break
                await self._played(state, response.info.id)
        except Exception:  # reported by the session as any failed turn; the game hears the end
            self._outbox.control(
                p.NpcExchangeDone(exchange_id=job.id, reason="error", lines_spoken=heard)
            )
            raise
        else:
            handoff = named if named in self._scene() else None
            self._outbox.control(
                p.NpcExchangeDone(
                    exchange_id=job.id, reason=reason, lines_spoken=heard, handoff=handoff
                )
            )
            return handoff
        finally:
            self._running = None
            self._pending = None

    async def _line(self, state: _Running, speaker: str, index: int) -> ActiveResponse:
        job = state.job
        names = self._names()
        others = [names.get(c, c) for c in job.characters if c != speaker]
        cue = OPENING if index == 0 else CLOSING if index == job.lines - 1 else LINE
        instructions = cue.format(others=" and ".join(others), topic=job.topic)
        state.spoken.append(speaker)
        options = self._direction(p.ResponseOptions(character=speaker, instructions=instructions))
        # no await between the stop check and here: the reply is the Responder's
        # current one from its first step, so an interruption cuts it
        state.speaking = True
        try:
            return await self._replies.reply(speaker, options)
        finally:
            state.speaking = False

    async def _played(self, state: _Running, response_id: str) -> None:
        """Wait while the line's audio still plays (up to `audio_lead_ms`), so the next
        speaker's audio never overlaps it at a client that plays audio as it arrives.
        A player who joins in meanwhile stops the exchange at once."""
        seconds = self._outbox.playing_for(response_id)
        if seconds > 0 and not state.stopped:
            state.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await state.wake.wait()

    def _heard(self, response: ActiveResponse) -> str:
        """What the listeners heard of the line: the history keeps it as heard."""
        for turn in reversed(self._history):
            if turn.item_id == response.item_id:
                return turn.text
        return ""

    async def _overheard(self, speaker: str, text: str) -> None:
        listeners = [c for c in self._scene() if c != speaker]
        if not listeners:
            return
        name = self._names().get(speaker, speaker)
        await self._conversation.overheard(
            listeners,
            self._player_id(),
            f"{name} said: {text}",
            importance=OVERHEARD_IMPORTANCE,
        )
