"""One realtime conversation: receive loop, listener, responder and sender as named tasks.

    receive ─► handle events ─► audio queue ─► listen (resample, VAD, endpointing)
                    │                              │ turn ended
                    ▼                              ▼
               job queue ◄───────────────────── transcribe / respond jobs
                    │
                respond ─► STT ─► route ─► LLM ─► sentences ─► TTS ─► outbox ─► send

Everything is bounded; everything is cancelled when the connection ends. Errors from
the client or the engines become `error` events here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.auth import LOCAL, ForbiddenError
from personae.daemon.characters import Character
from personae.daemon.deployments import Casting
from personae.daemon.engines.base import (
    INPUT_SAMPLE_RATE,
    ChatMessage,
    GenerationRequest,
    Transcript,
)
from personae.daemon.errors import (
    ClientError,
    EngineError,
    LimitExceededError,
    PersonaeError,
    UnknownCharacterError,
)
from personae.daemon.limits import SessionGuard
from personae.daemon.moderation import ContentBlockedError, moderator_for
from personae.daemon.monitoring import Observation
from personae.daemon.runtime import CharacterState
from personae.daemon.service import Service
from personae.daemon.session.endpointing import (
    Endpointer,
    Event,
    PauseEnded,
    PauseStarted,
    SpeechStarted,
    looks_complete,
)
from personae.daemon.session.incremental import IncrementalTranscript
from personae.daemon.session.outbox import Outbox, SlowClientError, audio_ms
from personae.daemon.session.prompt import Turn, build_messages, forgettable
from personae.daemon.session.splitter import SentenceSplitter, spoken_text, stage_directions
from personae.sdk import protocol as p

log = logging.getLogger("personae.session")

#: after a reply, how long the session waits before prefilling its next prompt
PRIME_DELAY_S = 0.15
#: lines a session keeps before its prompt window, which no prompt shows; past this
#: they are forgotten in one go (memories and replies are in the store)
HISTORY_SLACK = 256

T = TypeVar("T")


class SessionClosed(Exception):
    """The transport is gone (or must go: `code` is the WebSocket close code)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TranscribeJob:
    item_id: str
    audio: np.ndarray
    respond: bool
    #: the turn's transcription, begun while the player spoke (settings.stt_early)
    early: asyncio.Task[Transcript] | None = None


@dataclass(frozen=True, slots=True)
class RespondJob:
    options: p.ResponseOptions


@dataclass(slots=True)
class ActiveResponse:
    info: p.ResponseInfo
    item_id: str
    task: asyncio.Task[None] | None = None
    #: (sentence text, audio start ms) of what was handed to TTS, for truncation
    sentences: list[tuple[str, int]] = field(default_factory=list)
    #: text deltas generated so far
    text: list[str] = field(default_factory=list)
    speak: bool = True
    done: bool = False
    #: which version (and A/B variant) of the character speaks this reply
    casting: Casting | None = None
    started: float = 0.0
    #: when the LLM and TTS were through (its audio may still be going out)
    generated: float | None = None
    first_audio_ms: float | None = None


class RealtimeSession:
    def __init__(
        self,
        service: Service,
        *,
        receive: Callable[[], Awaitable[str | bytes]],
        send: Callable[[p.ServerEvent], Awaitable[None]],
        guard: SessionGuard | None = None,
    ) -> None:
        self.service = service
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
        self.config = p.Session(id=p.new_id("sess"))
        self.history: list[Turn] = []
        self._audio_in: asyncio.Queue[np.ndarray] = asyncio.Queue(64)
        self._jobs: asyncio.Queue[TranscribeJob | RespondJob] = asyncio.Queue(16)
        self._buffer: list[np.ndarray] = []  # push-to-talk input, 16 kHz float32
        self._buffer_samples = 0
        self._resampler = pcm.StreamResampler(self.config.input_sample_rate, INPUT_SAMPLE_RATE)
        self._endpointer = self._new_endpointer()
        self._turn_item: str | None = None
        #: the turn in progress, transcribed piece by piece (settings.stt_early)
        self._pieces: IncrementalTranscript | None = None
        #: push-to-talk: pauses in the buffer, so it is transcribed while the player talks
        self._ptt_vad: Endpointer | None = None
        self.response: ActiveResponse | None = None
        self._last_speaker: str | None = None
        #: item id -> (sentence, audio start ms) of recent replies, for truncation
        self._spoken: dict[str, list[tuple[str, int]]] = {}
        #: store writes that outlive a cancelled reply; the session waits for them
        self._writes: set[asyncio.Future[object]] = set()
        self._priming: set[asyncio.Future[None]] = set()
        self._prefilling: set[asyncio.Future[None]] = set()  # those past their delay
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve until the client leaves; raises SessionClosed when we must close."""
        self.outbox.control(p.SessionCreated(session=self.config))
        metrics = self.service.metrics
        metrics.session_opened()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive_loop(), name="receive")
                tg.create_task(self._listen_loop(), name="listen")
                tg.create_task(self._respond_loop(), name="respond")
                tg.create_task(self.outbox.run(), name="send")
        except* SlowClientError as group:
            raise SessionClosed(1008, str(group.exceptions[0])) from None
        except* SessionClosed as group:
            raise group.exceptions[0] from None
        finally:
            self._closing = True
            metrics.session_closed()
            self._drop_early()
            while not self._jobs.empty():  # turns never started: stop their early STT
                job = self._jobs.get_nowait()
                if isinstance(job, TranscribeJob) and job.early is not None:
                    job.early.cancel()
            if self.response is not None and self.response.task is not None:
                self.response.task.cancel()
            if self._writes:  # what was acknowledged or heard is written before we go
                await asyncio.wait(set(self._writes), timeout=5)
            for task in self._priming - self._prefilling:
                task.cancel()  # still waiting to start: the player has gone
            if self._priming:  # a prefill under way holds a pinned adapter until it is done
                await asyncio.wait(set(self._priming), timeout=5)

    async def _send_bounded(self, event: p.ServerEvent) -> None:
        """A client that takes too long to accept a frame is not reading: close it."""
        limit = self.service.settings.send_timeout_s
        try:
            async with asyncio.timeout(limit):
                await self._send(event)
        except TimeoutError:
            raise SlowClientError(f"client accepted no frame for {limit:g} s") from None

    # ------------------------------------------------------------------ receive

    async def _receive_loop(self) -> None:
        from personae.sdk.framing import FrameError, decode_client

        limit = self.service.settings.max_frame_bytes
        while True:
            frame = await self._receive()
            if len(frame) > limit:
                raise SessionClosed(1009, f"frame of {len(frame)} bytes exceeds {limit}")
            try:
                event, _ = decode_client(frame)
            except FrameError as exc:
                self._error(exc.code, exc.message, event_type=exc.event_type, event_id=exc.event_id)
                continue
            if self.guard is not None:
                try:
                    self.guard.admit(event)
                except LimitExceededError as exc:
                    if self.guard.exhausted:
                        raise SessionClosed(1008, "rate limit ignored") from None
                    self._error(exc.code, str(exc), event_type=event.type, event_id=event.event_id)
                    continue
            try:
                await self._handle(event)
            except ClientError as exc:
                self._error(exc.code, str(exc), event_type=event.type, event_id=event.event_id)

    async def _handle(self, event: p.ClientEvent) -> None:
        match event:
            case p.InputAudioBufferAppend(audio=data):
                if len(data) % 2:
                    raise ClientError(
                        f"PCM16 audio needs an even number of bytes, got {len(data)}",
                        code="invalid_audio",
                    )
                await self._audio_in.put(pcm.pcm16_to_float32(data))
            case p.InputAudioBufferCommit():
                await self._drain_audio()
                self._commit(respond=False)
            case p.InputAudioBufferClear():
                await self._drain_audio()
                self._buffer, self._buffer_samples = [], 0
                self._endpointer.reset()
                self._drop_early()
                self._ptt_vad = None
                self.outbox.control(p.InputAudioBufferCleared())
            case p.SessionUpdate(session=update):
                self._update_session(update)
            case p.ConversationItemCreate(item=item):
                await self._create_item(item)
            case p.ConversationItemTruncate():
                self._truncate(event)
            case p.ResponseCreate(response=options):
                self._check_characters([options.character] if options.character else [])
                if options.instructions:
                    self._moderate(options.instructions)
                self._enqueue(RespondJob(options))
            case p.ResponseCancel(response_id=rid):
                r = self.response
                if r is None or r.done or (rid is not None and rid != r.info.id):
                    raise ClientError(
                        "no response in progress to cancel", code="response_cancel_not_active"
                    )
                await self.cancel_response("client_cancelled")
            case p.GameEvent():
                self._check_characters(event.characters or [])
                perceivers = [c for c in (event.characters or self._scene())]
                states = await self.service.run(
                    "store",
                    self.service.runtime.game_event,
                    perceivers,
                    self.player_id,
                    event.name,
                    event.description,
                    event.data,
                )
                self._remember(Turn("game", f"{event.name}: {event.description}".strip(": ")))
                for cid, state in states.items():
                    self._emit_emotion(cid, state)
            case p.NpcFeedback():
                self._check_characters([event.character])
                await self.service.run("store", self._record_feedback, event)

    @property
    def player_id(self) -> str:
        return self.config.player_id or self.service.settings.default_player_id

    def _emit_emotion(self, character: str, state: CharacterState) -> None:
        self.outbox.control(
            p.NpcEmotion(
                character=character,
                **state.emotion.as_event(),
                trust=round(state.relationship.trust, 3),
                affinity=round(state.relationship.affinity, 3),
            )
        )

    def _record_feedback(self, event: p.NpcFeedback) -> None:
        experiments = self.service.experiments
        assigned = experiments.variant_for(event.character, self.player_id)
        if assigned is not None:
            experiment, variant = assigned
            experiments.record(
                experiment.name, variant.name, "feedback", event.score, player_id=self.player_id
            )

    async def _drain_audio(self) -> None:
        """Let the listener catch up with appended audio before a commit or clear."""
        await self._audio_in.join()

    def _enqueue(self, job: TranscribeJob | RespondJob) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            if isinstance(job, TranscribeJob) and job.early is not None:
                job.early.cancel()
            raise LimitExceededError(
                "too many pending turns; wait for replies to finish", code="too_many_pending_turns"
            ) from None

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
        self._check_characters(list(changes.get("characters") or []))
        if changes.get("pinned_character"):
            self._check_characters([changes["pinned_character"]])
        self.config = self.config.model_copy(update=changes)
        if "input_sample_rate" in changes:
            self._resampler = pcm.StreamResampler(self.config.input_sample_rate, INPUT_SAMPLE_RATE)
        if "turn_detection" in changes:
            self._endpointer = self._new_endpointer()
            self._drop_early()
            self._ptt_vad = None
        self.outbox.output_sample_rate = self.config.output_sample_rate
        self.outbox.control(p.SessionUpdated(session=self.config))

    def _new_endpointer(self) -> Endpointer:
        s = self.service.settings
        td = self.config.turn_detection
        return Endpointer(
            self.service.engines.vad.stream(),
            threshold=(td.threshold if td and td.threshold else s.vad_threshold),
            min_speech_ms=s.vad_min_speech_ms,
            silence_ms=(
                td.silence_duration_ms if td and td.silence_duration_ms else s.vad_silence_ms
            ),
            prefix_ms=(
                td.prefix_padding_ms if td and td.prefix_padding_ms is not None else s.vad_prefix_ms
            ),
            max_turn_s=s.max_turn_audio_s,
            complete_ms=s.vad_silence_complete_ms,
        )

    async def _player_said(self, text: str) -> None:
        """The characters in the scene heard the player: log, tone, memory."""
        await self.service.run(
            "store",
            lambda: self.service.runtime.player_said(
                self._scene(), self.player_id, text, session_id=self.config.id
            ),
        )

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
                "system items are not accepted; use response instructions", code="invalid_item"
            )
        self._moderate(text)
        item = item.model_copy(update={"id": item.id or p.new_id("item")})
        if item.role == "assistant":
            if item.character is None:
                raise ClientError("an assistant item must name its character", code="invalid_item")
            self._check_characters([item.character])
            self._remember(Turn(item.character, text, item.id or ""))
        else:
            self._remember(Turn("player", text, item.id or ""))
        self.outbox.control(p.ConversationItemCreated(item=item))
        if item.role == "user":
            await self._player_said(text)

    def _truncate(self, event: p.ConversationItemTruncate) -> None:
        for i, turn in enumerate(self.history):
            if turn.item_id == event.item_id and turn.speaker != "player":
                kept = self._heard_text(event.item_id, event.audio_end_ms)
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

    def _heard_text(self, item_id: str, end_ms: int) -> str | None:
        spoken = self._spoken.get(item_id)
        if spoken is None:
            return None
        return " ".join(text for text, start in spoken if start < end_ms)

    # ------------------------------------------------------------------ listen

    async def _listen_loop(self) -> None:
        s = self.service.settings
        max_samples = int(s.max_turn_audio_s * INPUT_SAMPLE_RATE)
        while True:
            chunk = await self._audio_in.get()
            try:
                audio = self._resampler.process(chunk)
                if self.config.turn_detection is None:
                    if self._buffer_samples + len(audio) > max_samples:
                        self._error(
                            "audio_too_long",
                            f"more than {s.max_turn_audio_s:g} s of audio "
                            "in one turn; commit or clear the buffer",
                            event_type="input_audio_buffer.append",
                        )
                        continue
                    self._buffer.append(audio)
                    self._buffer_samples += len(audio)
                    if s.stt_early:
                        await self._ptt_listen()
                else:
                    self._end_if_complete()
                    events = await self.service.run("vad", self._endpointer.feed, audio)
                    for ev in events:
                        await self._on_vad(ev)
                if self._pieces is not None and self._audio_in.empty():
                    # caught up with the player: transcribe the latest pause's piece
                    # (not the pauses of audio that came in faster than real time)
                    self._pieces.start_pending()
            finally:
                self._audio_in.task_done()

    async def _ptt_listen(self) -> None:
        """Push-to-talk: the turn ends at the commit, but the player's pauses are found
        as they come, so the buffer is transcribed while they talk (as with server VAD)
        and a commit in a pause finds the text ready."""
        if self._ptt_vad is None:  # a fresh one per buffer: its clock is the buffer's
            s = self.service.settings
            self._ptt_vad = Endpointer(
                self.service.engines.vad.stream(),
                threshold=s.vad_threshold,
                min_speech_ms=s.vad_min_speech_ms,
                silence_ms=1 << 30,  # only the commit ends the turn
                prefix_ms=0,
                max_turn_s=float(1 << 30),
            )
        audio = self._buffer[-1]
        events = await self.service.run("vad", self._ptt_vad.feed, audio)
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._pieces = self._pieces or self._new_pieces()
            elif self._pieces is None:
                continue
            elif isinstance(ev, PauseStarted):
                end = ev.at_ms * INPUT_SAMPLE_RATE // 1000
                so_far = np.concatenate(self._buffer)[:end]
                self._pieces.pause_started(ev.pause, so_far, start=False)
            elif isinstance(ev, PauseEnded):
                self._pieces.pause_ended(ev.pause, ev.silent_ms)

    def _new_pieces(self) -> IncrementalTranscript:
        s = self.service.settings
        return IncrementalTranscript(
            self._stt_piece, min_pause_ms=s.stt_piece_pause_ms, min_piece_s=s.stt_piece_min_s
        )

    async def _on_vad(self, ev: Event) -> None:
        td = self.config.turn_detection
        if isinstance(ev, PauseStarted):
            if self._pieces is not None:
                self._pieces.pause_started(ev.pause, ev.audio, start=False)
            return
        if isinstance(ev, PauseEnded):
            if self._pieces is not None:
                self._pieces.pause_ended(ev.pause, ev.silent_ms)
            return
        if isinstance(ev, SpeechStarted):
            self._drop_early()
            if self.service.settings.stt_early:
                self._pieces = self._new_pieces()
            self._turn_item = p.new_id("item")
            self.outbox.control(p.SpeechStarted(audio_start_ms=ev.at_ms, item_id=self._turn_item))
            if td is not None and td.interrupt_response:
                await self.cancel_response("turn_detected")
            return
        item_id = self._turn_item or p.new_id("item")
        self._turn_item = None
        early = self._finish_pieces(ev.audio, ev.pause)
        self.outbox.control(p.SpeechStopped(audio_end_ms=ev.at_ms, item_id=item_id))
        self.outbox.control(p.InputAudioBufferCommitted(item_id=item_id))
        self._enqueue(
            TranscribeJob(item_id, ev.audio, respond=bool(td and td.create_response), early=early)
        )

    def _end_if_complete(self) -> None:
        """Server VAD: once the transcript begun at this pause is in and reads as a
        finished sentence, the turn ends after the shorter silence
        (settings.vad_silence_complete_ms), decided at the frames fed next."""
        if self._pieces is None or not self._endpointer.ends_early:
            return
        ready = self._pieces.ready()
        if ready is not None and looks_complete(ready[1], self._hotwords()):
            self._endpointer.mark_complete(ready[0])

    def _finish_pieces(self, audio: np.ndarray, pause: int) -> asyncio.Task[Transcript] | None:
        """The ended turn's transcription: what is left after the pieces already done."""
        pieces, self._pieces = self._pieces, None
        if pieces is None:
            return None
        return asyncio.create_task(pieces.finish(audio, pause), name="stt turn")

    def _drop_early(self) -> None:
        if self._pieces is not None:
            self._pieces.cancel()
            self._pieces = None

    def _commit(self, *, respond: bool) -> None:
        td = self.config.turn_detection
        if td is not None:
            # With server VAD a commit ends the player's turn now ("done talking" button).
            ended = self._endpointer.force_end()
            if ended is None:
                raise ClientError(
                    "no speech in the input audio buffer", code="input_audio_buffer_commit_empty"
                )
            item_id = self._turn_item or p.new_id("item")
            self._turn_item = None
            early = self._finish_pieces(ended.audio, ended.pause)
            self.outbox.control(p.InputAudioBufferCommitted(item_id=item_id))
            self._enqueue(
                TranscribeJob(item_id, ended.audio, respond=td.create_response, early=early)
            )
            return
        if not self._buffer:
            raise ClientError("input audio buffer is empty", code="input_audio_buffer_commit_empty")
        audio = np.concatenate(self._buffer)
        self._buffer, self._buffer_samples = [], 0
        ended = self._ptt_vad.force_end() if self._ptt_vad is not None else None
        self._ptt_vad = None
        early = self._finish_pieces(audio, ended.pause) if ended is not None else None
        self._drop_early()  # no speech heard in the buffer: transcribed whole below
        item_id = p.new_id("item")
        self.outbox.control(p.InputAudioBufferCommitted(item_id=item_id))
        self._enqueue(TranscribeJob(item_id, audio, respond=respond, early=early))

    # ------------------------------------------------------------------ respond

    async def _respond_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                if isinstance(job, TranscribeJob):
                    text = await self._transcribe(job)
                    if job.respond and text:
                        await self._respond(p.ResponseOptions(), item_id=job.item_id)
                else:
                    await self._respond(job.options, item_id=None)
            except ClientError as exc:
                self._error(
                    exc.code,
                    str(exc),
                    event_type="response.create" if isinstance(job, RespondJob) else None,
                )
            except EngineError as exc:
                self._error(exc.code, str(exc), server=True, retryable=exc.retryable)

    def _hotwords(self) -> list[str]:
        return [n for cid in self._scene() for n in self.service.cast[cid].names]

    async def _transcribe(self, job: TranscribeJob) -> str:
        started = time.monotonic()
        if job.early is not None:
            result = await job.early
        else:
            result = await self.service.run("stt", self._stt, job.audio, self._hotwords())
        # with early transcription this is only what the player still waited for
        self.service.metrics.stage("stt", time.monotonic() - started)
        text = result.text.strip()
        self.outbox.control(p.TranscriptionCompleted(item_id=job.item_id, transcript=text))
        if text and not self.moderator.check(text, source="player").allowed:
            self._error("content_blocked", f"turn {job.item_id} was refused by moderation")
            return ""
        if text:
            self._remember(Turn("player", text, job.item_id))
            await self._player_said(text)
        return text

    def _stt(self, audio: np.ndarray, hotwords: list[str]):
        return self.service.engines.stt.transcribe(audio, hotwords=hotwords)

    async def _stt_piece(self, audio: np.ndarray) -> Transcript:
        return await self.service.run("stt", self._stt, audio, self._hotwords())

    def _scene(self) -> list[str]:
        scene = self.config.characters or self.service.cast
        return self.principal.visible(scene)

    async def _respond(self, options: p.ResponseOptions, *, item_id: str | None) -> None:
        user_text = next((t.text for t in reversed(self.history) if t.speaker == "player"), "")
        scene = self._scene()
        if not scene:
            raise ForbiddenError(
                f"key {self.principal.key_id} may use no character in this scene",
                code="forbidden_character",
            )
        routing_started = time.monotonic()
        decision = await self.service.run(
            "router",
            lambda: self.service.router.route(
                user_text,
                scene,
                pinned=self.config.pinned_character,
                requested=options.character,
                last_speaker=self._last_speaker,
            ),
        )
        self.service.metrics.stage("routing", time.monotonic() - routing_started)
        self.outbox.control(
            p.NpcRoute(
                item_id=item_id,
                character=decision.character,
                reason=decision.reason,
                scores=decision.scores,
            )
        )
        modalities = options.output_modalities or self.config.output_modalities
        info = p.ResponseInfo(
            id=p.new_id("resp"),
            character=decision.character,
            output_sample_rate=self.config.output_sample_rate,
        )
        response = ActiveResponse(
            info=info,
            item_id=p.new_id("item"),
            speak="audio" in modalities,
            started=time.monotonic(),
        )
        self.response = response
        self.outbox.control(p.ResponseCreated(response=info.model_copy()))
        # The reply runs as its own task so a barge-in can cancel it without touching
        # this loop; waiting with asyncio.wait never re-raises that cancellation here.
        task = asyncio.create_task(
            self._generate(response, options, speak=response.speak), name=f"response {info.id}"
        )
        response.task = task
        try:
            await asyncio.wait({task}, timeout=self.service.settings.reply_timeout_s)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if response.done:  # cancelled: barge-in or response.cancel already reported it
            return
        if task.cancelled():
            await self._finish(response, "failed", "timeout")
            self._error(
                "reply_timeout",
                f"the reply took longer than {self.service.settings.reply_timeout_s:g} s",
                server=True,
                retryable=True,
            )
            return
        exc = _first_leaf(task.exception())
        if exc is None:
            response.generated = time.monotonic()
            # Paced audio runs up to the reply's own length behind generation: until it
            # has all gone out the reply is still playing, and talking over it cancels it.
            await self.outbox.drained(info.id)
            if not response.done:
                await self._finish(response, "completed", None)
                self._prime_next(response)
            return
        blocked = isinstance(exc, ContentBlockedError)
        await self._finish(response, "failed", "content_filter" if blocked else "error")
        if isinstance(exc, PersonaeError):
            self._error(exc.code, str(exc), server=True, retryable=exc.retryable)
        else:
            log.error("session %s: reply failed", self.config.id, exc_info=exc)
            self._error("engine_error", f"{type(exc).__name__}: {exc}", server=True)

    async def _generate(
        self, r: ActiveResponse, options: p.ResponseOptions, *, speak: bool
    ) -> None:
        svc = self.service
        # resolved once: the reply finishes on this version whatever is deployed meanwhile
        r.casting = await svc.run("store", svc.deployments.cast, r.info.character, self.player_id)
        ch = r.casting.character
        adapter = await svc.run("adapters", svc.adapters.acquire, ch)
        try:
            await self._speak_reply(r, ch, adapter, options, speak=speak)
        finally:
            svc.adapters.release(adapter)

    async def _speak_reply(
        self,
        r: ActiveResponse,
        ch: Character,
        adapter: str | None,
        options: p.ResponseOptions,
        *,
        speak: bool,
    ) -> None:
        svc = self.service
        names = {cid: c.name for cid, c in svc.cast.items()}
        recent = [t.text for t in self.history[-2 * svc.settings.history_turns :]]
        ctx = await svc.run("store", svc.runtime.context_for, ch, self.player_id, recent)
        self._emit_emotion(ch.id, ctx.state)
        voice = ctx.voice
        messages = build_messages(
            ch,
            self.history,
            names=names,
            max_turns=svc.settings.history_turns,
            instructions=options.instructions,
            context=ctx.context,
            context_late=svc.settings.prompt_context_late,
        )
        request = GenerationRequest(messages=messages, params=ch.generation, adapter=adapter)
        part = {"response_id": r.info.id, "item_id": r.item_id, "character": ch.id}
        sentences: asyncio.Queue[str | None] = asyncio.Queue(8)
        splitter = SentenceSplitter(first_clause_chars=svc.settings.tts_first_clause_chars)

        async def think() -> None:
            stream = svc.stream("llm", lambda cancel: svc.engines.llm.generate(request, cancel))
            async with contextlib.aclosing(stream) as deltas:
                async for delta in _within(deltas, svc.settings.engine_stall_s, "llm"):
                    verdict = self.moderator.check(
                        "".join(r.text) + delta, source="character", character=ch.id
                    )
                    if not verdict.allowed:
                        raise ContentBlockedError(
                            f"reply stopped by moderation ({verdict.category})"
                        )
                    if not r.text:
                        svc.metrics.stage("first_token", time.monotonic() - r.started)
                    r.text.append(delta)
                    await self.outbox.data(p.OutputTextDelta(delta=delta, **part))
                    for sentence in splitter.push(delta):
                        await sentences.put(sentence)
            for sentence in splitter.flush():
                await sentences.put(sentence)
            await sentences.put(None)

        async def talk() -> None:
            offset = 0
            self._spoken_for(r.item_id, r.sentences)
            while (sentence := await sentences.get()) is not None:
                if not r.sentences:
                    svc.metrics.stage("first_sentence", time.monotonic() - r.started)
                r.sentences.append((sentence, offset))
                for kind, what in stage_directions(sentence):
                    await self.outbox.data(
                        p.NpcAction(kind=kind, text=what, audio_start_ms=offset, **part)  # type: ignore[arg-type]
                    )
                say = spoken_text(sentence)
                if not speak or not say:
                    continue
                out = await _in_time(
                    svc.run("tts", self._synthesize, say, voice.engine, voice),
                    svc.settings.engine_stall_s,
                    "tts",
                )
                duration = audio_ms(len(out) * 2, self.config.output_sample_rate)
                await self.outbox.data(
                    p.NpcSentence(
                        text=sentence, audio_start_ms=offset, audio_duration_ms=duration, **part
                    )
                )
                step = max(1, self.config.output_sample_rate * svc.settings.audio_chunk_ms // 1000)
                if r.first_audio_ms is None:
                    r.first_audio_ms = (time.monotonic() - r.started) * 1000
                    svc.metrics.stage("first_audio", r.first_audio_ms / 1000)
                for i in range(0, len(out), step):
                    chunk = out[i : i + step]
                    await self.outbox.data(
                        p.OutputAudioDelta(
                            delta=chunk.astype("<i2").tobytes(),
                            offset_ms=offset + audio_ms(i * 2, self.config.output_sample_rate),
                            **part,
                        )
                    )
                offset += duration

        async with asyncio.TaskGroup() as tg:
            tg.create_task(think(), name="llm")
            tg.create_task(talk(), name="tts")

    def _prime_next(self, r: ActiveResponse) -> None:
        """Once a reply has gone out, prefill its speaker's next prompt as far as it is
        known (the character, the examples and the history with this reply) while the
        player hears its last second. The next turn then prefills only its new context and
        the player's words."""
        s = self.service.settings
        if not (s.llm_prime_history and s.prompt_context_late) or r.casting is None:
            return
        ch = r.casting.character
        names = {cid: c.name for cid, c in self.service.cast.items()}
        messages = build_messages(ch, self.history, names=names, max_turns=s.history_turns)
        # not awaited: it runs beside the next turn. A closing session cancels it while
        # it still waits to start; a prefill under way (a fraction of a second, its
        # adapter pinned) is waited for
        task = asyncio.ensure_future(self._prime(ch, messages))
        self._priming.add(task)
        task.add_done_callback(self._priming.discard)

    async def _prime(self, ch: Character, messages: list[ChatMessage]) -> None:
        svc = self.service
        # a client that leaves when its reply is done (one question per connection)
        # has gone by then: its prefill would only slow the other sessions down
        await asyncio.sleep(PRIME_DELAY_S)
        if self._closing:
            return
        task = asyncio.current_task()
        assert task is not None
        self._prefilling.add(task)
        task.add_done_callback(self._prefilling.discard)
        try:
            adapter = await svc.run("adapters", svc.adapters.acquire, ch)
        except PersonaeError as exc:
            log.debug("session %s: no priming for %s: %s", self.config.id, ch.id, exc)
            return
        try:
            request = GenerationRequest(messages=messages, params=ch.generation, adapter=adapter)
            await svc.run("llm", svc.engines.llm.prime, request)
        except PersonaeError as exc:  # an optimisation only: the next reply prefills it all
            log.debug("session %s: priming %s failed: %s", self.config.id, ch.id, exc)
        finally:
            svc.adapters.release(adapter)

    def _remember(self, turn: Turn) -> None:
        self.history.append(turn)
        drop = forgettable(
            len(self.history), self.service.settings.history_turns, slack=HISTORY_SLACK
        )
        if drop:  # a session may last for hours: keep its list bounded
            del self.history[:drop]

    def _spoken_for(self, item_id: str, spoken: list[tuple[str, int]]) -> None:
        self._spoken[item_id] = spoken
        while len(self._spoken) > 32:
            self._spoken.pop(next(iter(self._spoken)))

    def _synthesize(self, text: str, engine: str, voice) -> np.ndarray:
        tts = self.service.engines.tts[engine]
        parts = [
            pcm.resample(c.pcm, c.sample_rate, self.config.output_sample_rate)
            for c in tts.synthesize(text, voice)
        ]
        return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)

    async def _finish(self, r: ActiveResponse, status: str, reason: str | None) -> None:
        if r.done:
            return
        r.done = True
        r.info.status = status  # type: ignore[assignment]
        r.info.status_reason = reason
        r.info.output_text = "".join(r.text).strip()
        elapsed = (r.generated or time.monotonic()) - r.started
        self.service.metrics.reply(r.info.character, status, tokens=len(r.text), seconds=elapsed)
        if status == "completed":
            self.service.metrics.stage("reply", elapsed)
        await self._record_reply(r, heard_only=status != "completed" and r.speak)
        part = {"response_id": r.info.id, "item_id": r.item_id, "character": r.info.character}
        done = p.ResponseDone(response=r.info.model_copy())
        if status == "completed":
            await self.outbox.data(p.OutputTextDone(text=r.info.output_text, **part))
            await self.outbox.data(p.OutputAudioDone(**part))
            await self.outbox.data(done)
        else:
            self.outbox.drop_response(r.info.id)
            self.outbox.control(done)
        if self.response is r:
            self.response = None

    async def _record_reply(self, r: ActiveResponse, *, heard_only: bool) -> None:
        """Remember the reply; an interrupted spoken one only as far as it was heard."""
        text = r.info.output_text
        if heard_only:
            sent = self.outbox.audio_sent_ms.get(r.info.id, 0)
            text = " ".join(s for s, start in r.sentences if start < sent)
        if not text:
            return
        self._remember(Turn(r.info.character, text, r.item_id))
        self._last_speaker = r.info.character
        # shielded: a reply cancelled by barge-in is still logged as far as it was heard
        write = asyncio.ensure_future(self.service.run("store", self._log_reply, r, text))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        observation = await asyncio.shield(write)
        for alert in observation.alerts if observation else ():
            self.outbox.control(
                p.NpcAlert(
                    character=alert.character,
                    signal=alert.signal,
                    rolling=round(alert.rolling, 4),
                    threshold=alert.threshold,
                    replies=alert.replies,
                )
            )

    def _log_reply(self, r: ActiveResponse, text: str) -> Observation | None:
        """Log the reply, score its consistency, feed the A/B metrics (blocking)."""
        svc = self.service
        casting = r.casting
        observation = svc.consistency.observe(
            casting.character if casting else svc.cast[r.info.character], text
        )
        latency = (
            r.first_audio_ms
            if r.first_audio_ms is not None
            else ((time.monotonic() - r.started) * 1000)
        )
        svc.runtime.character_said(
            r.info.character,
            self.player_id,
            text,
            session_id=self.config.id,
            version=casting.version if casting else None,
            variant=casting.variant if casting else None,
            latency_ms=latency,
        )
        if casting is not None and casting.experiment is not None and casting.variant is not None:
            svc.experiments.record(
                casting.experiment, casting.variant, "turns", 1.0, player_id=self.player_id
            )
            if observation is not None:
                svc.experiments.record(
                    casting.experiment,
                    casting.variant,
                    "consistency",
                    observation.score,
                    player_id=self.player_id,
                )
            svc.experiments.record(
                casting.experiment, casting.variant, "latency_ms", latency, player_id=self.player_id
            )
        return observation

    async def cancel_response(self, reason: str) -> None:
        """Stop the reply in progress at once: LLM, TTS and queued audio."""
        r = self.response
        if r is None or r.done:
            return
        await self._finish(r, "cancelled", reason)
        if r.task is not None and r.task is not asyncio.current_task():
            r.task.cancel()

    def _moderate(self, text: str) -> None:
        verdict = self.moderator.check(text, source="player")
        if not verdict.allowed:
            raise ClientError(f"refused by moderation ({verdict.category})", code="content_blocked")

    # ------------------------------------------------------------------ errors

    def _error(
        self,
        code: str,
        message: str,
        *,
        event_type: str | None = None,
        event_id: str | None = None,
        server: bool = False,
        retryable: bool = False,
    ) -> None:
        self.outbox.control(
            p.Error(
                error=p.ErrorInfo(
                    type="server_error" if server else "invalid_request_error",
                    code=code,
                    message=message,
                    event_type=event_type,
                    event_id=event_id,
                    retryable=retryable,
                )
            )
        )
        self.service.metrics.error(code)
        if server:
            log.warning("session %s: %s (%s)", self.config.id, code, message)


async def _within(items: AsyncIterator[T], seconds: float, engine: str) -> AsyncIterator[T]:
    """`items`, failing with a retryable EngineError when one takes longer than `seconds`."""
    while True:
        try:
            async with asyncio.timeout(seconds):
                item = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise EngineError(
                f"no output for {seconds:g} s", engine=engine, retryable=True
            ) from None
        yield item


async def _in_time(call: Awaitable[T], seconds: float, engine: str) -> T:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result when the
    # call finishes just as the caller is cancelled, swallowing the cancellation (a
    # barge-in or a blocked reply then left its TTS task waiting for sentences forever)
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError:
        raise EngineError(f"no result for {seconds:g} s", engine=engine, retryable=True) from None


def _first_leaf(exc: BaseException | None) -> BaseException | None:
    """The real error inside TaskGroup's exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


__all__ = ["PersonaeError", "RealtimeSession", "SessionClosed"]
