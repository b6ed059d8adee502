"""One realtime conversation: receive loop, listener, responder and sender as named tasks.

    receive ─► handle events ─► listener (resample, VAD, endpointing, early STT)
                    │                              │ turn ended
                    ▼                              ▼
               job queue ◄───────────────────── transcribe / respond jobs
                    │
                respond ─► STT ─► route ─► reply: LLM ─► sentences ─► TTS ─► outbox ─► send

The session owns the task group, the client's events and the conversation's history;
the listener (listener.py) and the reply (reply.py) are objects it builds from the
parts they need, and turns are prepared and recorded by the conversation module
(conversation.py), which the OpenAI API shares. Everything is bounded; everything is
cancelled when the connection ends. Errors become `error` events in reporting.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personae.daemon import audio as pcm
from personae.daemon.actions.planner import Plan
from personae.daemon.auth import LOCAL, ForbiddenError, default_player
from personae.daemon.errors import (
    ClientError,
    EngineError,
    LimitExceededError,
    UnknownCharacterError,
)
from personae.daemon.limits import SessionGuard
from personae.daemon.moderation import moderator_for
from personae.daemon.session import echo, exchange, openai_session, truncation
from personae.daemon.session.exchange import ExchangeJob, Exchanges
from personae.daemon.session.game_actions import SessionActions, with_plan
from personae.daemon.session.listener import Listener, TranscribeJob
from personae.daemon.session.outbox import Outbox, SlowClientError
from personae.daemon.session.prompt import Turn, forgettable
from personae.daemon.session.reply import Responder, emotion_event
from personae.daemon.session.reporting import ErrorReporter
from personae.daemon.session.speculation import Speculation, reply_preparer
from personae.sdk import protocol as p
from personae.sdk.framing import FrameError, decode_client
from personae.sdk.openai_shape import Dialect

if TYPE_CHECKING:
    from personae.daemon.service import Service

log = logging.getLogger("personae.session")

#: lines a session keeps before its prompt window, which no prompt shows; past this
#: they are forgotten in one go (memories and replies are in the store)
HISTORY_SLACK = 256


class SessionClosed(Exception):
    """The transport is gone (or must go: `code` is the WebSocket close code)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RespondJob:
    options: p.ResponseOptions
    #: a game trigger's (or goal's) plan; None = plan from the player's line
    plan: Plan | None = None


class RealtimeSession:
    def __init__(
        self,
        service: Service,
        *,
        receive: Callable[[], Awaitable[str | bytes]],
        send: Callable[[p.ServerEvent], Awaitable[None]],
        guard: SessionGuard | None = None,
        model: str | None = None,
        dialect: Dialect = Dialect.PERSONAE,
    ) -> None:
        """`model` is the URL's (a character id pins it; see `openai_session.pin`);
        `dialect` how the client spells events, from the connection (OpenAI-Beta header,
        `model` in the URL) until a session.update says otherwise."""
        self.service = service
        self.dialect = dialect
        s = service.settings
        self._receive = receive
        self._send = send
        #: the key's scopes and rate; None = local development (everything allowed)
        self.guard = guard
        self.principal = guard.principal if guard is not None else LOCAL
        self.moderator = moderator_for(s)
        self.outbox = Outbox(
            self._send_bounded, data_frames=s.send_queue_frames, lead_ms=s.audio_lead_ms
        )
        self.config = openai_session.initial(service, dialect, model)
        self.history: list[Turn] = []
        self.errors = ErrorReporter(
            outbox=self.outbox, metrics=service.metrics, session_id=self.config.id
        )
        self._jobs: asyncio.Queue[TranscribeJob | RespondJob | ExchangeJob] = asyncio.Queue(16)
        self._handoff: str | None = None  # whom an exchange's last line named (exchange.py)
        self._turns_waiting = 0  # player turns and responses queued, not yet taken up
        self.listener = Listener(
            settings=s,
            config=self.config,
            vad=service.engines.vad,
            stt=service.engines.stt,
            run=service.run,
            outbox=self.outbox,
            metrics=service.metrics,
            errors=self.errors,
            hotwords=self._hotwords,
            turns=self._enqueue,
            interrupt=self.cancel_response,
            end_of_turn=service.engines.end_of_turn,
            echo=echo.for_session(s, self.outbox),
            early=lambda text: (
                self.speculation.heard(text) if text else self.speculation.drop("went_on")
            ),
        )
        self.replies = Responder(
            settings=s,
            session=lambda: self.config,
            player_id=lambda: self.player_id,
            history=self.history,
            remember=self._remember,
            conversation=service.conversation,
            adapters=service.adapters,
            llm=service.engines.llm,
            tts=service.engines.tts,
            run=service.run,
            stream=service.stream,
            moderator=self.moderator,
            metrics=service.metrics,
            outbox=self.outbox,
            errors=self.errors,
            cast=service.cast,
            admission=service.admission,
        )
        self.speculation = Speculation(
            enabled=s.speculative_reply and s.stt_early,
            prepare=reply_preparer(self),
            generate=lambda req: service.stream(
                "llm", lambda c: service.engines.llm.generate(req, c)
            ),
            idle=lambda: (
                not self._turns_waiting
                and not self.replies.in_progress()
                and service.admission.busy < service.admission.slots
            ),
            metrics=service.metrics,
        )
        self.replies.speculation = self.speculation
        self.exchanges = Exchanges(
            replies=self.replies,
            outbox=self.outbox,
            conversation=service.conversation,
            history=self.history,
            names=service.conversation.names,
            addressed=service.router.addressed,
            scene=self._scene,
            player_id=lambda: self.player_id,
            player_waiting=lambda: self._turns_waiting > 0,
            direction=lambda o: openai_session.with_scene_direction(o, self.config),
            closeness=lambda text, among: service.run("router", service.router.scores, text, among),
            switch=(s.route_switch_similarity, s.route_switch_margin),
        )
        self.game = SessionActions(
            service,
            scene=self._scene,
            player_id=lambda: self.player_id,
            remember=self._remember,
            outbox=self.outbox,
        )

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve until the client leaves; raises SessionClosed when we must close."""
        self.outbox.control(p.SessionCreated(session=self.config))
        self._warm_scene()
        metrics = self.service.metrics
        metrics.session_opened()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive_loop(), name="receive")
                tg.create_task(self.listener.run(), name="listen")
                tg.create_task(self._respond_loop(), name="respond")
                tg.create_task(self.outbox.run(), name="send")
        except* SlowClientError as group:
            raise SessionClosed(1008, str(group.exceptions[0])) from None
        except* SessionClosed as group:
            raise group.exceptions[0] from None
        finally:
            metrics.session_closed()
            # every turn's transcription stops, started or still queued
            await self.listener.close()
            await self.speculation.close()
            await self.replies.close()

    async def _send_bounded(self, event: p.ServerEvent) -> None:
        """A client that takes too long to accept a frame is not reading: close it."""
        spelled = openai_session.spell(event, self.dialect, npc_events=self.config.npc_events)
        if spelled is None:
            return
        event = spelled  # type: ignore[assignment]
        limit = self.service.settings.send_timeout_s
        try:
            async with asyncio.timeout(limit):
                await self._send(event)
        except TimeoutError:
            raise SlowClientError(f"client accepted no frame for {limit:g} s") from None

    @property
    def player_id(self) -> str:
        return self.config.player_id or default_player(
            self.principal, self.service.settings.default_player_id
        )

    # ------------------------------------------------------------------ receive

    async def _receive_loop(self) -> None:
        limit = self.service.settings.max_frame_bytes
        while True:
            frame = await self._receive()
            if len(frame) > limit:
                raise SessionClosed(1009, f"frame of {len(frame)} bytes exceeds {limit}")
            try:
                event, _ = decode_client(frame)
            except FrameError as exc:
                self.errors.report(exc)
                continue
            if self.guard is not None:
                try:
                    self.guard.admit(event)
                except LimitExceededError as exc:
                    if self.guard.exhausted:
                        raise SessionClosed(1008, "rate limit ignored") from None
                    self.errors.report(exc, event_type=event.type, event_id=event.event_id)
                    continue
            try:
                await self._handle(event)
            except ClientError as exc:
                self.errors.report(exc, event_type=event.type, event_id=event.event_id)

    async def _handle(self, event: p.ClientEvent) -> None:
        match event:
            case p.InputAudioBufferAppend(audio=data):
                if len(data) % 2:
                    raise ClientError(
                        f"PCM16 audio needs an even number of bytes, got {len(data)}",
                        code="invalid_audio",
                    )
                await self.listener.append(pcm.pcm16_to_float32(data))
            case p.InputAudioBufferCommit():
                await self._player_joins_in()
                await self.listener.commit(respond=False)
            case p.InputAudioBufferClear():
                await self.listener.clear()
            case p.SessionUpdate(session=update):
                self._update_session(update)
            case p.ConversationItemCreate(item=item):
                await self._create_item(item)
            case p.ConversationItemTruncate():
                self._truncate(event)
            case p.ResponseCreate(response=options):
                self._check_characters([options.character] if options.character else [])
                for warning in openai_session.warnings(options):
                    self.outbox.control(warning)  # type: ignore[arg-type]
                if options.instructions:
                    self._moderate(options.instructions)
                self._enqueue(RespondJob(options))
            case p.ResponseCancel(response_id=rid):
                if not self.replies.in_progress(rid):
                    raise ClientError(
                        "no response in progress to cancel", code="response_cancel_not_active"
                    )
                await self.cancel_response("client_cancelled")
            case p.GameEvent():
                self._check_characters(event.characters or [])
                perceivers = [c for c in (event.characters or self._scene())]
                states = await self.service.conversation.game_event(
                    perceivers, self.player_id, event.name, event.description, event.data
                )
                self._remember(Turn("game", f"{event.name}: {event.description}".strip(": ")))
                for cid, state in states.items():
                    self.outbox.control(emotion_event(cid, state))
            case p.NpcConverse():
                self._converse(event)
            case p.GameTrigger():
                self._check_characters([event.character])
                job = await self.game.trigger(event)
                if job.interrupt and self.replies.in_progress():
                    await self.cancel_response("trigger")
                self._enqueue(RespondJob(p.ResponseOptions(character=job.character), job.plan))
            case p.GameActionResult():
                await self.game.result(event)
            case p.NpcFeedback():
                self._check_characters([event.character])
                await self.service.conversation.feedback(
                    event.character, self.player_id, event.score
                )

    def _converse(self, event: p.NpcConverse) -> None:
        """Checked in full before anything is queued or written (see exchange.py)."""
        job = exchange.check(
            event,
            scene=self._scene(),
            known=self._check_characters,
            moderate=self._moderate,
            max_lines=self.service.settings.exchange_max_lines,
        )
        self.exchanges.accept(job)
        try:
            self._enqueue(job)
        except ClientError:
            self.exchanges.withdraw(job)
            raise

    async def _player_joins_in(self) -> None:  # during an exchange: it stops, its line is cut
        if self.exchanges.interrupt():
            await self.replies.cancel("player_joined")

    def _enqueue(self, job: TranscribeJob | RespondJob | ExchangeJob) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            if isinstance(job, TranscribeJob) and job.early is not None:
                job.early.cancel()
            raise LimitExceededError(
                "too many pending turns; wait for replies to finish", code="too_many_pending_turns"
            ) from None
        self._turns_waiting += not isinstance(job, ExchangeJob)
        if isinstance(job, TranscribeJob) and self.dialect.openai:
            for event in openai_session.user_item(job.item_id, audio=True):
                self.outbox.control(event)  # type: ignore[arg-type]

    def _check_characters(self, ids: list[str]) -> None:
        visible = self.principal.visible(self.service.cast)
        unknown = [c for c in ids if c not in self.service.cast]
        if unknown:
            raise UnknownCharacterError(
                f"unknown character {unknown[0]!r}; known: {', '.join(sorted(visible))}"
            )
        forbidden = [c for c in ids if not self.principal.may_use(c)]
        if forbidden:
            raise ForbiddenError(
                f"key {self.principal.key_id} may not use character {forbidden[0]!r}",
                code="forbidden_character",
            )

    def _update_session(self, update: p.SessionConfig) -> None:
        changes = {k: getattr(update, k) for k in update.model_fields_set}
        if changes.get("player_id"):
            self.principal.require_player(changes["player_id"])
        if update.dialect is Dialect.OPENAI_BETA or (update.dialect and not self.dialect.openai):
            self.dialect = update.dialect  # the client spoke OpenAI's shape (beta's, if so)
        changes.update(openai_session.changes(self.service, self.config, update, self.dialect))
        self._check_characters(list(changes.get("characters") or []))
        if changes.get("pinned_character"):
            self._check_characters([changes["pinned_character"]])
        config = self.config
        if self.dialect.openai and not isinstance(config, p.OpenAISession):
            config = p.OpenAISession(**dict(config))
        self.config = config.model_copy(update=changes)
        self.listener.configure(self.config, changes)
        if "characters" in changes:
            self._warm_scene()
        self.outbox.output_sample_rate = self.config.output_sample_rate
        self.outbox.control(p.SessionUpdated(session=self.config))
        for warning in openai_session.warnings(update):
            self.outbox.control(warning)  # type: ignore[arg-type]

    async def _create_item(self, item: p.Item) -> None:
        text = item.text.strip()
        if not text:
            raise ClientError("a message item needs text content", code="invalid_item")
        limit = self.service.settings.max_text_chars
        if len(text) > limit:
            raise LimitExceededError(
                f"text of {len(text)} characters exceeds {limit}", code="text_too_long"
            )
        if item.role == "system":
            raise ClientError(
                "system items are not accepted; use session or response instructions",
                code="invalid_item",
            )
        self._moderate(text)
        item = item.model_copy(update={"id": item.id or p.new_id("item")})
        if item.role == "assistant" and item.character is None and self.dialect.openai:
            # OpenAI clients name no speaker: the pinned character, or the last one
            speaker = self.config.pinned_character or self.replies.last_speaker
            item = item.model_copy(update={"character": speaker})
        if item.role == "assistant":
            if item.character is None:
                raise ClientError("an assistant item must name its character", code="invalid_item")
            self._check_characters([item.character])
            self._remember(Turn(item.character, text, item.id or ""))
        else:
            await self._player_joins_in()
            self._remember(Turn("player", text, item.id or ""))
            # the acknowledgement follows the durable write (turn log, memory, state)
            await self._player_said(text)
        self.outbox.control(p.ConversationItemCreated(item=item))
        if self.dialect.openai:
            for event in openai_session.user_item(item.id or "", text=text, role=item.role):
                self.outbox.control(event)  # type: ignore[arg-type]

    def _truncate(self, event: p.ConversationItemTruncate) -> None:
        for i, turn in enumerate(self.history):
            if turn.item_id == event.item_id and turn.speaker != "player":
                truncation.check(event, sent_ms=self.outbox.item_audio_ms(event.item_id))
                kept = self.replies.heard_text(event.item_id, event.audio_end_ms)
                if kept is not None:
                    self.history[i] = Turn(turn.speaker, kept, turn.item_id)
                self.outbox.control(
                    p.ConversationItemTruncated(
                        item_id=event.item_id,
                        content_index=event.content_index,
                        audio_end_ms=event.audio_end_ms,
                    )
                )
                return
        raise ClientError(f"no assistant item {event.item_id!r} to truncate", code="item_not_found")

    def _moderate(self, text: str) -> None:
        verdict = self.moderator.check(text, source="player")
        if not verdict.allowed:
            raise ClientError(f"refused by moderation ({verdict.category})", code="content_blocked")

    # ------------------------------------------------------------------ respond

    async def _respond_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            self._turns_waiting -= not isinstance(job, ExchangeJob)
            try:
                if isinstance(job, TranscribeJob):
                    text = await self._transcribe(job)
                    if job.respond and text:
                        await self._respond(p.ResponseOptions(), item_id=job.item_id)
                elif isinstance(job, ExchangeJob):
                    self._handoff = await self.exchanges.run(job)
                else:
                    await self._respond(job.options, item_id=None, plan=job.plan)
            except ClientError as exc:
                event_type = "response.create" if isinstance(job, RespondJob) else None
                self.errors.report(exc, event_type=event_type)
            except EngineError as exc:
                self.errors.report(exc)

    async def _transcribe(self, job: TranscribeJob) -> str:
        text = await self.listener.transcribe(job)
        if text and not self.moderator.check(text, source="player").allowed:
            self.errors.report(
                ClientError(f"turn {job.item_id} was refused by moderation", code="content_blocked")
            )
            return ""
        if text:
            self._remember(Turn("player", text, job.item_id))
            await self._player_said(text)
        return text

    async def _player_said(self, text: str) -> None:
        """The characters in the scene heard the player: log, tone, memory."""
        await self.service.conversation.player_said(
            self._scene(), self.player_id, text, session_id=self.config.id
        )

    def _warm_scene(self) -> None:
        """The scene's characters made warm in the background, yielding to replies."""
        cast = self.service.cast
        self.replies.warm([cast[cid] for cid in self._scene() if cid in cast])

    def _scene(self) -> list[str]:
        scene = self.config.characters or self.service.cast
        return self.principal.visible(scene)

    def _hotwords(self) -> list[str]:
        return [n for cid in self._scene() for n in self.service.cast[cid].names]

    async def _respond(
        self, options: p.ResponseOptions, *, item_id: str | None, plan: Plan | None = None
    ) -> None:
        """Route the turn to one character, who replies (doing what the plan says)."""
        options = openai_session.with_scene_direction(options, self.config)
        user_text = next((t.text for t in reversed(self.history) if t.speaker == "player"), "")
        scene = self._scene()
        if not scene:
            raise ForbiddenError(
                f"key {self.principal.key_id} may use no character in this scene",
                code="forbidden_character",
            )
        svc = self.service
        handoff, self._handoff = self._handoff, None  # for this one player line only
        routing_started = time.monotonic()
        decision = await svc.run(
            "router",
            lambda: svc.router.route(
                user_text,
                scene,
                pinned=self.config.pinned_character,
                requested=options.character,
                last_speaker=self.replies.last_speaker,
                handoff=handoff,
            ),
        )
        svc.metrics.stage("routing", time.monotonic() - routing_started)
        self.outbox.control(
            p.NpcRoute(
                item_id=item_id,
                character=decision.character,
                reason=decision.reason,
                scores=decision.scores,
            )
        )
        if plan is None and self.history and self.history[-1].speaker == "player":
            plan = await self.game.for_player(decision.character, user_text)
        if plan is not None:
            self.game.announced(decision.character, plan)
            options = with_plan(options, plan)
        await self.replies.reply(
            decision.character,
            options,
            actions=plan.actions if plan else (),
            script=plan.script if plan else None,
        )

    def _remember(self, turn: Turn) -> None:
        self.history.append(turn)
        drop = forgettable(
            len(self.history), self.service.settings.history_turns, slack=HISTORY_SLACK
        )
        if drop:  # a session may last for hours: keep its list bounded
            del self.history[:drop]

    async def cancel_response(self, reason: str) -> None:
        """Stop the reply in progress at once: LLM, TTS, queued audio (and its exchange)."""
        self.exchanges.interrupt()
        self.speculation.drop("cancelled")
        await self.replies.cancel(reason)


__all__ = ["RealtimeSession", "SessionClosed"]
