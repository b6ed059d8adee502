"""A character's reply: generated, spoken sentence by sentence, finished once, recorded.

    casting ─► adapter ─► prepared turn ─► LLM deltas ─► sentences ─► TTS ─► outbox
                                      (think)            (talk: actions, sentence, audio)

One reply at a time per session, as its own task, so a barge-in or `response.cancel`
stops it at once without touching the session's loops. Every engine stage has a stall
limit (`engine_stall_s`) and the whole reply a time limit (`reply_timeout_s`). A reply
cancelled while it was spoken is remembered only as far as it was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from personae.daemon.actions.planner import PlannedAction
from personae.daemon.adapters import AdapterCache
from personae.daemon.admission import Admission
from personae.daemon.characters import Character, VoiceConfig
from personae.daemon.deployments import Casting
from personae.daemon.engines.base import GenerationRequest, LLMEngine, TTSEngine
from personae.daemon.moderation import ContentBlockedError, Moderator
from personae.daemon.monitoring import Metrics
from personae.daemon.runtime import CharacterState
from personae.daemon.session import lipsync
from personae.daemon.session.conversation import Conversation, Run
from personae.daemon.session.deadlines import first_leaf, in_time_once_started, within
from personae.daemon.session.finishing import for_reply, graced
from personae.daemon.session.openai_reply import ReplyShape
from personae.daemon.session.outbox import Outbox, audio_ms
from personae.daemon.session.priming import Primer
from personae.daemon.session.prompt import Turn
from personae.daemon.session.reporting import ErrorReporter, ReplyTimeoutError
from personae.daemon.session.speculation import Speculation
from personae.daemon.session.splitter import spoken_text, stage_directions
from personae.daemon.settings import Settings
from personae.sdk import protocol as p

#: iterate a blocking generator on a stage's threads: `stream(stage, make)` (`Service.stream`)
Stream = Callable[..., AsyncIterator[Any]]


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
    #: how its events are spelled (OpenAI clients get OpenAI's whole event set)
    shape: ReplyShape = field(default_factory=lambda: ReplyShape(openai=False, speak=True))
    #: what the LLM was asked, for `usage`
    request: GenerationRequest | None = None
    #: declared actions the game is told of as the reply starts (`npc.action` kind "game")
    game_actions: tuple[PlannedAction, ...] = ()
    #: said verbatim instead of generated (a trigger's or goal's line)
    script: str | None = None
    #: LLM deltas, and whether the budget ended it (trimmed to its last sentence)
    tokens: int = 0
    cut: bool = False


def emotion_event(character: str, state: CharacterState) -> p.NpcEmotion:
    return p.NpcEmotion(
        character=character,
        **state.emotion.as_event(),
        trust=round(state.relationship.trust, 3),
        affinity=round(state.relationship.affinity, 3),
    )


class Responder:
    def __init__(
        self,
        *,
        settings: Settings,
        session: Callable[[], p.Session],
        player_id: Callable[[], str],
        history: list[Turn],
        remember: Callable[[Turn], None],
        conversation: Conversation,
        adapters: AdapterCache,
        llm: LLMEngine,
        tts: Mapping[str, TTSEngine],
        run: Run,
        stream: Stream,
        moderator: Moderator,
        metrics: Metrics,
        outbox: Outbox,
        errors: ErrorReporter,
        cast: Mapping[str, Character] | None = None,
        admission: Admission,
    ) -> None:
        """`session()` is the session's current config and `player_id()` its player;
        `history` the session's turns (read for prompts), to which `remember` adds;
        `cast` the characters whose voices the session's `voice` may name."""
        self._settings = settings
        self._session = session
        self._player_id = player_id
        self._history = history
        self._remember = remember
        self._conversation = conversation
        self._adapters = adapters
        self._llm = llm
        self._tts = tts
        self._run = run
        self._stream = stream
        self._moderator = moderator
        self._metrics = metrics
        self._outbox = outbox
        self._errors = errors
        self._cast = cast or {}
        self._admission = admission
        self._primer = Primer(
            settings=settings,
            conversation=conversation,
            adapters=adapters,
            llm=llm,
            run=run,
            session_id=session().id,
        )
        self.current: ActiveResponse | None = None
        #: a reply started before the turn ended, which the next reply may take (speculation.py)
        self.speculation: Speculation | None = None
        #: who spoke the last reply the player heard (routing keeps to them)
        self.last_speaker: str | None = None
        #: item id -> (sentence, audio start ms) of recent replies, for truncation
        self._spoken: dict[str, list[tuple[str, int]]] = {}
        #: store writes that outlive a cancelled reply; the session waits for them
        self._writes: set[asyncio.Future[object]] = set()

    def warm(self, characters: list[Character]) -> list[str]:
        """Warm a new scene's characters in the background, yielding to replies."""
        return self._primer.warm(characters, self._history, busy=self.in_progress)

    def in_progress(self, response_id: str | None = None) -> bool:
        r = self.current
        return r is not None and not r.done and (response_id is None or response_id == r.info.id)

    async def reply(
        self,
        character: str,
        options: p.ResponseOptions,
        *,
        actions: tuple[PlannedAction, ...] = (),
        script: str | None = None,
    ) -> ActiveResponse:
        """`character` answers: created, generated and spoken, finished one way or another
        (the response it returns says how: `info.status`, what the LLM was asked).
        `actions` are announced as the reply starts; a `script` is said instead of generated."""
        config = self._session()
        modalities = options.output_modalities or config.output_modalities
        shape = ReplyShape(openai=isinstance(config, p.OpenAISession), speak="audio" in modalities)
        info = shape.info(
            id=p.new_id("resp"), character=character, output_sample_rate=config.output_sample_rate
        )
        if options.metadata is not None:
            info.metadata = options.metadata  # type: ignore[attr-defined]
        response = ActiveResponse(
            info=info,
            item_id=p.new_id("item"),
            speak=shape.speak,
            started=time.monotonic(),
            shape=shape,
            game_actions=actions,
            script=script,
        )
        self.current = response
        self._outbox.control(p.ResponseCreated(response=info.model_copy()))
        for event in shape.started(info, response.item_id):
            await self._outbox.data(event)  # type: ignore[arg-type]
        # The reply runs as its own task so a barge-in can cancel it without touching
        # the session's loop; waiting with asyncio.wait never re-raises that cancellation.
        task = asyncio.create_task(
            self._generate(response, options, speak=response.speak), name=f"response {info.id}"
        )
        response.task = task
        limit = self._settings.reply_timeout_s
        try:
            await asyncio.wait({task}, timeout=limit)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if response.done:  # cancelled: barge-in or response.cancel already reported it
            return response
        if task.cancelled():
            await self._finish(response, "failed", "timeout")
            self._errors.report(
                ReplyTimeoutError(f"the reply took longer than {limit:g} s"), replying=True
            )
            return response
        exc = first_leaf(task.exception())
        if exc is None:
            response.generated = time.monotonic()
            # Paced audio runs up to the reply's own length behind generation: until it
            # has all gone out the reply is still playing, and talking over it cancels it.
            await self._outbox.drained(info.id)
            if not response.done:
                await self._finish(response, "completed", None)
                if response.casting is not None:
                    self._primer.used(response.casting.character.id)
                    self._primer.prime(response.casting.character, self._history)
            return response
        blocked = isinstance(exc, ContentBlockedError)
        await self._finish(response, "failed", "content_filter" if blocked else "error")
        self._errors.report(exc, replying=True)
        return response

    async def cancel(self, reason: str) -> None:
        """Stop the reply in progress at once: LLM, TTS and queued audio."""
        r = self.current
        if r is None or r.done:
            return
        await self._finish(r, "cancelled", reason)
        if r.task is not None and r.task is not asyncio.current_task():
            r.task.cancel()

    def generating(self, item_id: str) -> bool:
        """Whether `item_id` is the reply still being generated or spoken."""
        r = self.current
        return r is not None and not r.done and r.item_id == item_id

    def heard_text(self, item_id: str, end_ms: int) -> str | None:
        """What the player heard of reply `item_id` before `end_ms` of its audio."""
        spoken = self._spoken.get(item_id)
        if spoken is None:
            return None
        return " ".join(text for text, start in spoken if start < end_ms)

    async def close(self) -> None:
        """The session is over: stop the reply; wait for what must still be written."""
        self._primer.stop()
        if self.current is not None and self.current.task is not None:
            self.current.task.cancel()
        if self._writes:  # what was acknowledged or heard is written before we go
            await asyncio.wait(set(self._writes), timeout=5)
        await self._primer.close()

    # --- generating and speaking ---

    async def _generate(
        self, r: ActiveResponse, options: p.ResponseOptions, *, speak: bool
    ) -> None:
        r.casting = await self._conversation.casting(r.info.character, self._player_id())
        ch = r.casting.character
        adapter = await self._run("adapters", self._adapters.acquire, ch)
        try:
            await self._speak_reply(r, ch, adapter, options, speak=speak)
        finally:
            self._adapters.release(adapter)

    async def _speak_reply(
        self,
        r: ActiveResponse,
        ch: Character,
        adapter: str | None,
        options: p.ResponseOptions,
        *,
        speak: bool,
    ) -> None:
        s = self._settings
        turn = await self._conversation.prepare(
            ch,
            self._history,
            self._player_id(),
            instructions=options.instructions,
            adapter=adapter,
        )
        self._outbox.control(emotion_event(ch.id, turn.context.state))
        voice = self._voice(turn.context.voice)
        finisher = for_reply(s, turn.request.params, script=r.script is not None)
        request = r.request = graced(turn.request, s)
        part = {"response_id": r.info.id, "item_id": r.item_id, "character": ch.id}
        for act in r.game_actions:
            await self._outbox.data(act.event(**part))
        sentences: asyncio.Queue[str | None] = asyncio.Queue(8)

        async def think() -> None:
            # waiting for a slot is queueing, not an engine stall (or server_busy)
            async with self._admission.slot():
                await generate()

        async def generate() -> None:
            if r.script is not None:
                stream = _said(r.script)
            elif (stream := self.speculation and self.speculation.take(request)) is None:
                stream = self._stream("llm", lambda cancel: self._llm.generate(request, cancel))
            async with contextlib.aclosing(stream) as deltas:
                async for delta in within(deltas, s.engine_stall_s, "llm"):
                    verdict = self._moderator.check(
                        finisher.raw + delta, source="character", character=ch.id
                    )
                    if not verdict.allowed:
                        raise ContentBlockedError(
                            f"reply stopped by moderation ({verdict.category})"
                        )
                    if not finisher.raw:
                        self._metrics.stage("first_token", time.monotonic() - r.started)
                    await release(finisher.push(delta))
                    if finisher.enough:  # the budget is spent and a sentence just ended
                        break
            counted = None
            if finisher.needs_count():
                counted = await self._run(
                    "llm", self._llm.count_tokens, request.messages, finisher.raw
                )
            await release(finisher.finish(finisher.ran_out(counted and counted[1])))
            r.tokens, r.cut = finisher.tokens, finisher.cut
            await sentences.put(None)

        async def release(pieces: list[tuple[str, str]]) -> None:
            # only whole sentences go out: an unfinished tail is never sent nor spoken
            for sentence, delta in pieces:
                r.text.append(delta)
                await self._outbox.data(r.shape.text_delta(delta, **part))  # type: ignore[arg-type]
                if any(c.isalnum() for c in sentence):  # a trailing-off "…" is not spoken
                    await sentences.put(sentence)

        async def talk() -> None:
            offset = 0
            self._spoken_for(r.item_id, r.sentences)
            while (sentence := await sentences.get()) is not None:
                if not r.sentences:
                    self._metrics.stage("first_sentence", time.monotonic() - r.started)
                r.sentences.append((sentence, offset))
                for kind, what in stage_directions(sentence):
                    await self._outbox.data(
                        p.NpcAction(kind=kind, text=what, audio_start_ms=offset, **part)  # type: ignore[arg-type]
                    )
                say = spoken_text(sentence)
                if not speak or not say:
                    continue
                out, phones = await in_time_once_started(
                    self._run, "tts", self._synthesize, (say, voice.engine, voice), s.engine_stall_s
                )
                rate = self._session().output_sample_rate
                duration = audio_ms(len(out) * 2, rate)
                await self._outbox.data(
                    p.NpcSentence(
                        text=sentence, audio_start_ms=offset, audio_duration_ms=duration, **part
                    )
                )
                step = max(1, rate * s.audio_chunk_ms // 1000)
                if r.first_audio_ms is None:
                    r.first_audio_ms = (time.monotonic() - r.started) * 1000
                    self._metrics.stage("first_audio", r.first_audio_ms / 1000)
                lips = lipsync.events(phones if self._session().visemes else (), say,
                                      offset_ms=offset, rate=rate, step=step, samples=len(out), **part)  # fmt: skip
                for i in range(0, len(out), step):
                    chunk = out[i : i + step]
                    if (lips_now := lips.get(i // step)) is not None:
                        await self._outbox.data(lips_now)
                    await self._outbox.data(
                        p.OutputAudioDelta(
                            delta=chunk.astype("<i2").tobytes(),
                            offset_ms=offset + audio_ms(i * 2, rate),
                            **part,
                        )
                    )
                offset += duration

        async with asyncio.TaskGroup() as tg:
            tg.create_task(think(), name="llm")
            tg.create_task(talk(), name="tts")

    def _spoken_for(self, item_id: str, spoken: list[tuple[str, int]]) -> None:
        self._spoken[item_id] = spoken
        while len(self._spoken) > 32:
            self._spoken.pop(next(iter(self._spoken)))

    def _synthesize(self, text: str, engine: str, voice: VoiceConfig) -> lipsync.Speech:
        return lipsync.speak(self._tts[engine], text, voice, self._session().output_sample_rate)

    # --- finishing and recording ---

    async def _finish(self, r: ActiveResponse, status: str, reason: str | None) -> None:
        if r.done:
            return
        r.done = True
        r.info.status = status  # type: ignore[assignment]
        r.info.status_reason = reason
        r.info.output_text = "".join(r.text).strip()
        elapsed = (r.generated or time.monotonic()) - r.started
        tokens = r.tokens or len(r.text)
        self._metrics.reply(r.info.character, status, tokens=tokens, seconds=elapsed)
        if status == "completed":
            self._metrics.stage("reply", elapsed)
        await self._record(r, heard_only=status != "completed" and r.speak)
        usage = await self._usage(r) if status == "completed" else None
        r.shape.output(r.info, r.item_id, usage)
        done = p.ResponseDone(response=r.info.model_copy())
        if status == "completed":
            for event in r.shape.finished(r.info, r.item_id):
                await self._outbox.data(event)  # type: ignore[arg-type]
            await self._outbox.data(done)
        else:
            self._outbox.drop_response(r.info.id)
            self._outbox.control(done)
        if self.current is r:
            self.current = None

    async def _usage(self, r: ActiveResponse) -> tuple[int, int] | None:
        """(prompt, reply) tokens as the LLM engine counts them (OpenAI's `usage`)."""
        if not r.shape.openai or r.request is None:
            return None
        return await self._run(
            "llm", self._llm.count_tokens, r.request.messages, r.info.output_text
        )

    def _voice(self, own: VoiceConfig) -> VoiceConfig:
        """The session's `voice` (a character id) speaks every reply; else its own."""
        chosen = self._session().voice
        if chosen is None or chosen not in self._cast:
            return own
        return self._cast[chosen].voice

    async def _record(self, r: ActiveResponse, *, heard_only: bool) -> None:
        """Remember the reply; an interrupted spoken one only as far as it was heard."""
        text = r.info.output_text
        if heard_only:
            sent = self._outbox.audio_sent_ms.get(r.info.id, 0)
            text = " ".join(s for s, start in r.sentences if start < sent)
        if not text or r.casting is None:  # nothing said (no casting: nothing generated)
            return
        self._remember(Turn(r.info.character, text, r.item_id))
        self.last_speaker = r.info.character
        latency = (
            r.first_audio_ms
            if r.first_audio_ms is not None
            else ((time.monotonic() - r.started) * 1000)
        )
        # shielded: a reply cancelled by barge-in is still logged as far as it was heard
        write = asyncio.ensure_future(
            self._conversation.record_reply(
                r.info.character,
                r.casting,
                self._player_id(),
                text,
                session_id=self._session().id,
                latency_ms=latency,
            )
        )
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        observation = await asyncio.shield(write)
        for alert in observation.alerts if observation else ():
            self._outbox.control(
                p.NpcAlert(
                    character=alert.character,
                    signal=alert.signal,
                    rolling=round(alert.rolling, 4),
                    threshold=alert.threshold,
                    replies=alert.replies,
                )
            )


async def _said(line: str) -> AsyncIterator[str]:
    """A verbatim line, as the one delta of a reply."""
    yield line
