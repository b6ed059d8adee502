"""One realtime conversation: receive loop, listener, responder and sender as named tasks.

    receive ─► handle events ─► listener (resample, VAD, endpointing, early STT)
                    │                              │ turn ended
                    ▼                              ▼
               job queue ◄───────────────────── transcribe / respond jobs
                    │
                respond ─► STT ─► route ─► reply: LLM ─► sentences ─► TTS ─► outbox ─► send

The session owns the task group, the client's events and the conversation's history;
the listener (listener.py), the turn queue (turns.py) and the reply (reply.py) are
objects it builds from the parts they need, and turns are prepared and recorded by the
conversation module (conversation.py), which the OpenAI API shares. Everything is
bounded; everything is cancelled when the connection ends. Errors become `error`
events in reporting.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from personae.daemon import audio as pcm
from personae.daemon.auth import LOCAL, default_player
from personae.daemon.errors import ClientError
from personae.daemon.limits import SessionGuard
from personae.daemon.moderation import moderator_for
from personae.daemon.session import (
    echo,
    exchange,
    items,
    openai_session,
    session_update,
    transport,
    truncation,
)
from personae.daemon.session.exchange import ExchangeJob, Exchanges
from personae.daemon.session.game_actions import SessionActions
from personae.daemon.session.listener import Listener, TranscribeJob
from personae.daemon.session.outbox import Outbox, SlowClientError
from personae.daemon.session.prompt import Turn, forgettable
from personae.daemon.session.reply import Responder
from personae.daemon.session.reporting import ErrorReporter
from personae.daemon.session.scene import SessionScene
from personae.daemon.session.speculation import Speculation, reply_preparer
from personae.daemon.session.transport import SessionClosed
from personae.daemon.session.turns import RespondJob, Turns
from personae.sdk import protocol as p
from personae.sdk.openai_shape import Dialect

if TYPE_CHECKING:
    from personae.daemon.service import Service

log = logging.getLogger("personae.session")

#: lines a session keeps before its prompt window, which no prompt shows; past this
#: they are forgotten in one go (memories and replies are in the store)
HISTORY_SLACK = 256


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
        self.scene = SessionScene(service, principal=self.principal, config=lambda: self.config)
        self.listener = Listener(
            settings=s,
            config=self.config,
            vad=service.engines.vad,
            stt=service.engines.stt,
            run=service.run,
            outbox=self.outbox,
            metrics=service.metrics,
            errors=self.errors,
            hotwords=self.scene.hotwords,
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
            prepare=reply_preparer(
                service,
                scene=self.scene.characters,
                config=lambda: self.config,
                history=self.history,
                player_id=lambda: self.player_id,
                last_speaker=lambda: self.replies.last_speaker,
                handoff=lambda: self.turns.handoff,
            ),
            generate=lambda req: service.stream(
                "llm", lambda c: service.engines.llm.generate(req, c)
            ),
            idle=lambda: (
                not self.turns.waiting
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
            scene=self.scene.characters,
            player_id=lambda: self.player_id,
            player_waiting=lambda: self.turns.waiting > 0,
            direction=lambda o: openai_session.with_scene_direction(o, self.config),
            closeness=lambda text, among: service.run("router", service.router.scores, text, among),
            switch=(s.route_switch_similarity, s.route_switch_margin),
        )
        self.game = SessionActions(
            service,
            scene=self.scene.characters,
            player_id=lambda: self.player_id,
            remember=self._remember,
            outbox=self.outbox,
        )
        self.turns = Turns(
            service,
            transcribe=self.listener.transcribe,
            replies=self.replies,
            exchanges=self.exchanges,
            game=self.game,
            moderator=self.moderator,
            errors=self.errors,
            outbox=self.outbox,
            history=self.history,
            remember=self._remember,
            player_said=self._player_said,
            scene=self.scene.characters,
            config=lambda: self.config,
            principal=self.principal,
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
                tg.create_task(self.turns.run(), name="respond")
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
        await transport.send_spelled(
            self._send,
            event,
            dialect=self.dialect,
            npc_events=self.config.npc_events,
            timeout_s=self.service.settings.send_timeout_s,
        )

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
            event = transport.admitted(frame, limit=limit, guard=self.guard, errors=self.errors)
            if event is None:
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
                if self.replies.generating(event.item_id):
                    # a client that stopped playing mid-reply: the reply ends first (as
                    # response.cancel would), so it is in memory to be cut at what was heard
                    await self.cancel_response("client_cancelled")
                truncated = truncation.truncate(
                    self.history,
                    event,
                    sent_ms=self.outbox.item_audio_ms,
                    heard_text=self.replies.heard_text,
                )
                self.outbox.control(truncated)
            case p.ResponseCreate(response=options):
                self.scene.check([options.character] if options.character else [])
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
                self.scene.check(event.characters or [])
                await self.game.perceived(event)
            case p.NpcConverse():
                self._converse(event)
            case p.GameTrigger():
                self.scene.check([event.character])
                job = await self.game.trigger(event)
                if job.interrupt and self.replies.in_progress():
                    await self.cancel_response("trigger")
                self._enqueue(RespondJob(p.ResponseOptions(character=job.character), job.plan))
            case p.GameActionResult():
                await self.game.result(event)
            case p.NpcFeedback():
                self.scene.check([event.character])
                await self.service.conversation.feedback(
                    event.character, self.player_id, event.score
                )

    def _converse(self, event: p.NpcConverse) -> None:
        """Checked in full before anything is queued or written (see exchange.py)."""
        job = exchange.check(
            event,
            scene=self.scene.characters(),
            known=self.scene.check,
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
        self.turns.put(job)
        if isinstance(job, TranscribeJob) and self.dialect.openai:
            for event in openai_session.user_item(job.item_id, audio=True):
                self.outbox.control(event)  # type: ignore[arg-type]

    def _update_session(self, update: p.SessionConfig) -> None:
        changes = session_update.requested(update, self.principal)
        self.dialect = session_update.dialect(update, self.dialect)
        self.config, changes = session_update.applied(
            self.service, self.config, update, changes, dialect=self.dialect, check=self.scene.check
        )
        self.listener.configure(self.config, changes)
        if "characters" in changes:
            self._warm_scene()
        self.outbox.output_sample_rate = self.config.output_sample_rate
        self.outbox.control(p.SessionUpdated(session=self.config))
        for warning in openai_session.warnings(update):
            self.outbox.control(warning)  # type: ignore[arg-type]

    async def _create_item(self, item: p.Item) -> None:
        item, text = items.accepted(
            item,
            max_chars=self.service.settings.max_text_chars,
            moderate=self._moderate,
            check=self.scene.check,
            openai=self.dialect.openai,
            speaker=self.config.pinned_character or self.replies.last_speaker,
        )
        if item.role == "assistant":
            self._remember(Turn(item.character or "", text, item.id or ""))
        else:
            await self._player_joins_in()
            self._remember(Turn("player", text, item.id or ""))
            # the acknowledgement follows the durable write (turn log, memory, state)
            await self._player_said(text)
        self.outbox.control(p.ConversationItemCreated(item=item))
        if self.dialect.openai:
            for event in openai_session.user_item(item.id or "", text=text, role=item.role):
                self.outbox.control(event)  # type: ignore[arg-type]

    def _moderate(self, text: str) -> None:
        verdict = self.moderator.check(text, source="player")
        if not verdict.allowed:
            raise ClientError(f"refused by moderation ({verdict.category})", code="content_blocked")

    # ------------------------------------------------------------------ respond

    async def _player_said(self, text: str) -> None:
        """The characters in the scene heard the player: log, tone, memory."""
        await self.service.conversation.player_said(
            self.scene.characters(), self.player_id, text, session_id=self.config.id
        )

    def _warm_scene(self) -> None:
        """The scene's characters made warm in the background, yielding to replies."""
        cast = self.service.cast
        self.replies.warm([cast[cid] for cid in self.scene.characters() if cid in cast])

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
