"""The respond lane: the session's turns, queued and taken up one at a time.

    listener ─► TranscribeJob ─┐
    response.create, trigger ─► RespondJob ─┼─► queue (bounded) ─► transcribe ─► respond
    npc.converse ─► ExchangeJob ───┘                       respond: route ─► plan ─► reply

A turn is routed to one character of the scene (an exchange's last line may hand the
next player line to the character it named), the character's plan is made for it, and
the reply (reply.py) says it. A turn that goes wrong becomes an `error` event and the
next one is taken up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personae.daemon.actions.planner import Plan
from personae.daemon.auth import ForbiddenError, Principal
from personae.daemon.errors import ClientError, EngineError, LimitExceededError
from personae.daemon.session import openai_session
from personae.daemon.session.exchange import ExchangeJob, Exchanges
from personae.daemon.session.game_actions import SessionActions, with_plan
from personae.daemon.session.listener import TranscribeJob
from personae.daemon.session.prompt import Turn
from personae.sdk import protocol as p

if TYPE_CHECKING:
    from personae.daemon.moderation import Moderator
    from personae.daemon.service import Service
    from personae.daemon.session.outbox import Outbox
    from personae.daemon.session.reply import Responder
    from personae.daemon.session.reporting import ErrorReporter

#: turns and exchanges that may wait behind the one being taken up
QUEUED_TURNS = 16


@dataclass(frozen=True, slots=True)
class RespondJob:
    options: p.ResponseOptions
    #: a game trigger's (or goal's) plan; None = plan from the player's line
    plan: Plan | None = None


Job = TranscribeJob | RespondJob | ExchangeJob


class Turns:
    def __init__(
        self,
        service: Service,
        *,
        transcribe: Callable[[TranscribeJob], Awaitable[str]],
        replies: Responder,
        exchanges: Exchanges,
        game: SessionActions,
        moderator: Moderator,
        errors: ErrorReporter,
        outbox: Outbox,
        history: list[Turn],
        remember: Callable[[Turn], None],
        player_said: Callable[[str], Awaitable[None]],
        scene: Callable[[], list[str]],
        config: Callable[[], p.Session],
        principal: Principal,
    ) -> None:
        self._service = service
        self._transcribe_turn = transcribe
        self._replies = replies
        self._exchanges = exchanges
        self._game = game
        self._moderator = moderator
        self._errors = errors
        self._outbox = outbox
        self._history = history
        self._remember = remember
        self._player_said = player_said
        self._scene = scene
        self._config = config
        self._principal = principal
        self._jobs: asyncio.Queue[Job] = asyncio.Queue(QUEUED_TURNS)
        #: player turns and responses queued, not yet taken up
        self.waiting = 0
        #: whom an exchange's last line named (exchange.py), for the next player line
        self.handoff: str | None = None

    def put(self, job: Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            if isinstance(job, TranscribeJob) and job.early is not None:
                job.early.cancel()
            raise LimitExceededError(
                "too many pending turns; wait for replies to finish", code="too_many_pending_turns"
            ) from None
        self.waiting += not isinstance(job, ExchangeJob)

    async def run(self) -> None:
        while True:
            job = await self._jobs.get()
            self.waiting -= not isinstance(job, ExchangeJob)
            try:
                if isinstance(job, TranscribeJob):
                    text = await self._transcribe(job)
                    if job.respond and text:
                        await self.respond(p.ResponseOptions(), item_id=job.item_id)
                elif isinstance(job, ExchangeJob):
                    self.handoff = await self._exchanges.run(job)
                else:
                    await self.respond(job.options, item_id=None, plan=job.plan)
            except ClientError as exc:
                event_type = "response.create" if isinstance(job, RespondJob) else None
                self._errors.report(exc, event_type=event_type)
            except EngineError as exc:
                self._errors.report(exc)

    async def _transcribe(self, job: TranscribeJob) -> str:
        text = await self._transcribe_turn(job)
        if text and not self._moderator.check(text, source="player").allowed:
            self._errors.report(
                ClientError(f"turn {job.item_id} was refused by moderation", code="content_blocked")
            )
            return ""
        if text:
            self._remember(Turn("player", text, job.item_id))
            await self._player_said(text)
        return text

    async def respond(
        self, options: p.ResponseOptions, *, item_id: str | None, plan: Plan | None = None
    ) -> None:
        """Route the turn to one character, who replies (doing what the plan says)."""
        options = openai_session.with_scene_direction(options, self._config())
        history = self._history
        user_text = next((t.text for t in reversed(history) if t.speaker == "player"), "")
        scene = self._scene()
        if not scene:
            raise ForbiddenError(
                f"key {self._principal.key_id} may use no character in this scene",
                code="forbidden_character",
            )
        svc = self._service
        handoff, self.handoff = self.handoff, None  # for this one player line only
        routing_started = time.monotonic()
        decision = await svc.run(
            "router",
            lambda: svc.router.route(
                user_text,
                scene,
                pinned=self._config().pinned_character,
                requested=options.character,
                last_speaker=self._replies.last_speaker,
                handoff=handoff,
            ),
        )
        svc.metrics.stage("routing", time.monotonic() - routing_started)
        self._outbox.control(
            p.NpcRoute(
                item_id=item_id,
                character=decision.character,
                reason=decision.reason,
                scores=decision.scores,
            )
        )
        game = self._game
        if plan is None and history and history[-1].speaker == "player":
            plan = await game.for_player(decision.character, user_text)
        if plan is not None:
            game.announced(decision.character, plan)
            options = with_plan(options, plan)
        await self._replies.reply(
            decision.character,
            options,
            actions=plan.actions if plan else (),
            script=plan.script if plan else None,
        )
