"""The player's audio, until their turn ends.

    append ─► audio queue ─► resample ─► server VAD: endpointer ends the turn at a pause
                                         push-to-talk: the buffer, until the commit
                                   │ (settings.stt_early) transcribed in pieces meanwhile
                                   ▼
                          TranscribeJob ─► `turns` (the session's job queue)

With server VAD a turn ends after a long enough silence, or after a shorter one once
the text so far reads as a finished sentence; a commit ends it at once. With
push-to-talk only the commit ends it, but the player's pauses are still found as they
come, so the buffer is transcribed while they talk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.engines.base import INPUT_SAMPLE_RATE, STTEngine, Transcript, VADEngine
from personae.daemon.errors import ClientError
from personae.daemon.monitoring import Metrics
from personae.daemon.session.echo import EchoCheck
from personae.daemon.session.end_of_turn import EndOfTurnModel
from personae.daemon.session.endpointing import (
    Endpointer,
    Event,
    PauseEnded,
    PauseLasted,
    PauseStarted,
    SpeechStarted,
    ends_open,
    looks_complete,
)
from personae.daemon.session.incremental import IncrementalTranscript
from personae.daemon.session.outbox import Outbox
from personae.daemon.session.reporting import ErrorReporter
from personae.daemon.settings import Settings
from personae.sdk import protocol as p


@dataclass(frozen=True, slots=True)
class TranscribeJob:
    item_id: str
    audio: np.ndarray
    respond: bool
    #: the turn's transcription, begun while the player spoke (settings.stt_early)
    early: asyncio.Task[Transcript] | None = None


class Listener:
    def __init__(
        self,
        *,
        settings: Settings,
        config: p.Session,
        vad: VADEngine,
        stt: STTEngine,
        run: Callable[..., Awaitable[Any]],
        outbox: Outbox,
        metrics: Metrics,
        errors: ErrorReporter,
        hotwords: Callable[[], list[str]],
        turns: Callable[[TranscribeJob], None],
        interrupt: Callable[[str], Awaitable[None]],
        end_of_turn: EndOfTurnModel | None = None,
        echo: EchoCheck | None = None,
        early: Callable[[str | None], None] | None = None,
    ) -> None:
        """`run(stage, fn, *args)` runs a blocking engine call on the stage's threads;
        `hotwords()` are the names STT should expect now; `turns` takes each ended turn;
        `interrupt(reason)` stops the reply in progress when the player talks over it;
        `end_of_turn` (server VAD) ends a turn at a short pause when it calls it complete;
        `echo` (server VAD) takes the character's own voice out of what the VAD hears;
        `early(text)` hears the turn so far once a pause's transcript is in, and
        `early(None)` that the turn it heard goes on (speculation.py)."""
        self._settings = settings
        self._config = config
        self._vad = vad
        self._stt_engine = stt
        self._run = run
        self._outbox = outbox
        self._metrics = metrics
        self._errors = errors
        self._hotwords = hotwords
        self._turns = turns
        self._interrupt = interrupt
        self._end_of_turn = end_of_turn
        self._echo = echo
        self._early = early
        self._early_told: tuple[int, int] | None = None  # (pieces id, pause) told early
        #: the pause the end-of-turn model called complete, awaiting its transcript
        self._model_complete = -1
        #: (audio, clock when it arrived): the echo check lines it up with reply audio
        self._audio_in: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue(64)
        self._buffer: list[np.ndarray] = []  # push-to-talk input, 16 kHz float32
        self._buffer_samples = 0
        self._resampler = pcm.StreamResampler(config.input_sample_rate, INPUT_SAMPLE_RATE)
        self._endpointer = self._new_endpointer()
        self._turn_item: str | None = None
        #: the turn in progress, transcribed piece by piece (settings.stt_early)
        self._pieces: IncrementalTranscript | None = None
        #: push-to-talk: pauses in the buffer, so it is transcribed while the player talks
        self._ptt_vad: Endpointer | None = None
        #: ended turns' transcriptions still running ("stt turn" tasks)
        self._finishing: set[asyncio.Task[Transcript]] = set()

    @property
    def pieces(self) -> IncrementalTranscript | None:
        """The turn in progress, as far as it is transcribed (None between turns)."""
        return self._pieces

    # --- what the client sends ---

    async def append(self, audio: np.ndarray) -> None:
        """PCM at the session's input rate, as float32; bounded, so a fast client waits."""
        await self._audio_in.put((audio, time.monotonic()))

    async def commit(self, *, respond: bool) -> None:
        """End the player's turn now; `respond` (push-to-talk) asks for a reply to it."""
        await self._audio_in.join()  # the listener catches up with appended audio first
        td = self._config.turn_detection
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
            self._outbox.control(p.InputAudioBufferCommitted(item_id=item_id))
            self._turns(
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
        self.drop_early()  # no speech heard in the buffer: transcribed whole below
        item_id = self._turn_item or p.new_id("item")
        self._turn_item = None
        self._outbox.control(p.InputAudioBufferCommitted(item_id=item_id))
        self._turns(TranscribeJob(item_id, audio, respond=respond, early=early))

    async def clear(self) -> None:
        await self._audio_in.join()
        self._buffer, self._buffer_samples = [], 0
        self._endpointer.reset()
        self.drop_early()
        self._ptt_vad = None
        self._turn_item = None
        self._outbox.control(p.InputAudioBufferCleared())

    def configure(self, config: p.Session, changed: Collection[str]) -> None:
        """The session's new settings; `changed` names the fields the update set."""
        self._config = config
        if "input_sample_rate" in changed:
            self._resampler = pcm.StreamResampler(config.input_sample_rate, INPUT_SAMPLE_RATE)
        if "turn_detection" in changed:
            self._endpointer = self._new_endpointer()
            self._model_complete = -1  # pause numbers start again
            self.drop_early()
            self._ptt_vad = None

    async def caught_up(self) -> None:
        """Wait until the audio appended so far has been listened to."""
        await self._audio_in.join()

    def drop_early(self) -> None:
        """Stop transcribing the turn in progress (cleared, or the session is closing)."""
        if self._pieces is not None:
            self._pieces.cancel()
            self._pieces = None
            self._went_on()

    def _tell_early(self) -> None:
        """A pause's transcript is in: `early` hears the turn so far, once per pause."""
        if self._early is None or self._pieces is None:
            return
        ready = self._pieces.ready()
        if ready is not None and self._early_told != (id(self._pieces), ready[0]):
            self._early_told = (id(self._pieces), ready[0])
            self._early(ready[1])

    def _went_on(self) -> None:
        if self._early is not None and self._early_told is not None:
            self._early_told = None
            self._early(None)

    # --- listening ---

    async def run(self) -> None:
        s = self._settings
        max_samples = int(s.max_turn_audio_s * INPUT_SAMPLE_RATE)
        while True:
            chunk, arrived = await self._audio_in.get()
            try:
                self._tell_early()  # before the turn can end on that same transcript
                audio = self._resampler.process(chunk)
                if self._config.turn_detection is None:
                    if self._buffer_samples + len(audio) > max_samples:
                        self._errors.report(
                            ClientError(
                                f"more than {s.max_turn_audio_s:g} s of audio "
                                "in one turn; commit or clear the buffer",
                                code="audio_too_long",
                            ),
                            event_type="input_audio_buffer.append",
                        )
                        continue
                    self._buffer.append(audio)
                    self._buffer_samples += len(audio)
                    if s.stt_early:
                        await self._ptt_listen()
                else:
                    self._end_if_complete()
                    events = await self._run("vad", self._hear, audio, arrived)
                    # a turn the session cannot take (too many pending) is an error the
                    # player hears; the listener keeps listening
                    for ev in events:
                        await self._reporting(self._on_vad(ev))
                    await self._reporting(self._end_if_model_complete())
                if self._pieces is not None and self._audio_in.empty():
                    # caught up with the player: transcribe the latest pause's piece
                    # (not the pauses of audio that came in faster than real time)
                    self._pieces.start_pending()
                self._tell_early()
            finally:
                self._audio_in.task_done()

    def _hear(self, audio: np.ndarray, arrived: float) -> list[Event]:
        """Server VAD: the VAD judges the microphone less the character's echo; the turn
        gets it too once the echo's delay is known (echo.EchoCheck.turn)."""
        if self._echo is not None and not self._config.client_echo_cancellation:
            heard = self._echo.process(audio, arrived)
            return self._endpointer.feed(self._echo.turn, heard)
        return self._endpointer.feed(audio)

    def _new_endpointer(self) -> Endpointer:
        s = self._settings
        td = self._config.turn_detection
        return Endpointer(
            self._vad.stream(),
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
            check_ms=s.end_of_turn_pause_ms if self._end_of_turn is not None else 0,
        )

    async def _ptt_listen(self) -> None:
        """Push-to-talk: the turn ends at the commit, but the player's pauses are found
        as they come, so the buffer is transcribed while they talk (as with server VAD)
        and a commit in a pause finds the text ready."""
        if self._ptt_vad is None:  # a fresh one per buffer: its clock is the buffer's
            s = self._settings
            self._ptt_vad = Endpointer(
                self._vad.stream(),
                threshold=s.vad_threshold,
                min_speech_ms=s.vad_min_speech_ms,
                silence_ms=1 << 30,  # only the commit ends the turn
                prefix_ms=0,
                max_turn_s=float(1 << 30),
            )
        audio = self._buffer[-1]
        events = await self._run("vad", self._ptt_vad.feed, audio)
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._turn_item = self._turn_item or p.new_id("item")
                self._pieces = self._pieces or self._new_pieces(self._turn_item)
            elif self._pieces is None:
                continue
            elif isinstance(ev, PauseStarted):
                end = ev.at_ms * INPUT_SAMPLE_RATE // 1000
                so_far = np.concatenate(self._buffer)[:end]
                self._pieces.pause_started(ev.pause, so_far, start=False)
            elif isinstance(ev, PauseEnded):
                self._pieces.pause_ended(ev.pause, ev.silent_ms)
                self._went_on()

    def _new_pieces(self, item_id: str) -> IncrementalTranscript:
        s = self._settings
        return IncrementalTranscript(
            self._stt_piece,
            min_pause_ms=s.stt_piece_pause_ms,
            min_piece_s=s.stt_piece_min_s,
            on_text=self._partials(item_id),
        )

    def _partials(self, item_id: str) -> Callable[[str], None]:
        """Partial transcripts of turn `item_id` as its pieces are decoded: only text
        that extends what was sent (a piece re-decoded differently waits for the end)."""
        sent = ""

        def partial(text: str) -> None:
            nonlocal sent
            if len(text) > len(sent) and text.startswith(sent):
                delta, sent = text[len(sent) :], text
                self._outbox.control(p.TranscriptionDelta(item_id=item_id, delta=delta))

        return partial

    async def _on_vad(self, ev: Event) -> None:
        td = self._config.turn_detection
        if isinstance(ev, PauseStarted):
            if self._pieces is not None:
                self._pieces.pause_started(ev.pause, ev.audio, start=False)
            return
        if isinstance(ev, PauseLasted):
            await self._ask_end_of_turn(ev)
            return
        if isinstance(ev, PauseEnded):
            if self._pieces is not None:
                self._pieces.pause_ended(ev.pause, ev.silent_ms)
            self._went_on()
            return
        if isinstance(ev, SpeechStarted):
            self.drop_early()
            self._model_complete = -1
            self._turn_item = p.new_id("item")
            if self._settings.stt_early:
                self._pieces = self._new_pieces(self._turn_item)
            self._outbox.control(p.SpeechStarted(audio_start_ms=ev.at_ms, item_id=self._turn_item))
            if td is not None and td.interrupt_response:
                await self._interrupt("turn_detected")
            return
        item_id = self._turn_item or p.new_id("item")
        self._turn_item = None
        early = self._finish_pieces(ev.audio, ev.pause)
        self._outbox.control(p.SpeechStopped(audio_end_ms=ev.at_ms, item_id=item_id))
        self._outbox.control(p.InputAudioBufferCommitted(item_id=item_id))
        self._turns(
            TranscribeJob(item_id, ev.audio, respond=bool(td and td.create_response), early=early)
        )

    async def _ask_end_of_turn(self, ev: PauseLasted) -> None:
        """Server VAD, a short pause: end the turn now if the end-of-turn model calls it
        complete (the silence rules still end it otherwise)."""
        if self._end_of_turn is None:
            return
        prob = await self._run("vad", self._end_of_turn.probability, ev.audio)
        if prob < self._settings.end_of_turn_threshold:
            return
        if self._pieces is None:  # no transcript to wait for (stt_early off)
            ended = self._endpointer.end_at_pause(ev.pause)
            if ended is not None:
                await self._on_vad(ended)
            return
        self._model_complete = ev.pause
        await self._end_if_model_complete()

    async def _reporting(self, step: Awaitable[None]) -> None:
        try:
            await step
        except ClientError as exc:
            self._errors.report(exc, event_type="input_audio_buffer.append")

    async def _end_if_model_complete(self) -> None:
        """The model called this pause complete: end the turn once the pause's
        transcript is in (the reply needs it anyway, so waiting for it costs nothing),
        unless the words leave it open: "Hey Mara," then the question, or "...and"."""
        if self._model_complete < 0 or self._pieces is None:
            return
        ready = self._pieces.ready()
        if ready is None or ready[0] != self._model_complete:
            return
        pause, self._model_complete = self._model_complete, -1
        if ends_open(ready[1], self._hotwords()):
            return
        ended = self._endpointer.end_at_pause(pause)
        if ended is not None:
            await self._on_vad(ended)

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
        task = asyncio.create_task(pieces.finish(audio, pause), name="stt turn")
        # owned here until done: a turn refused or never started must not outlive us
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return task

    async def close(self) -> None:
        """The session is ending: stop every transcription and wait until they have."""
        self.drop_early()
        tasks = list(self._finishing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- transcription ---

    async def transcribe(self, job: TranscribeJob) -> str:
        """The ended turn's text, as the client is told it (empty when nothing was said)."""
        started = time.monotonic()
        if job.early is not None:
            result = await job.early
        else:
            result = await self._run("stt", self._stt, job.audio, self._hotwords())
        # with early transcription this is only what the player still waited for
        self._metrics.stage("stt", time.monotonic() - started)
        text = result.text.strip()
        self._outbox.control(p.TranscriptionCompleted(item_id=job.item_id, transcript=text))
        return text

    def _stt(self, audio: np.ndarray, hotwords: list[str]) -> Transcript:
        return self._stt_engine.transcribe(audio, hotwords=hotwords)

    async def _stt_piece(self, audio: np.ndarray) -> Transcript:
        return await self._run("stt", self._stt, audio, self._hotwords())
