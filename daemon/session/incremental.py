"""A turn transcribed piece by piece while the player is still speaking.

Each pause in a turn closes a piece: its transcription starts in the background as
soon as the listener has caught up with the audio (a pause already over in audio that
came in faster than real time is never decoded). If the player speaks again after a
pause long enough to be a phrase boundary (not a breath) and the piece is long enough,
the piece's text is committed and the next piece starts where it ended. When the
turn ends on a pause, that last piece is already under way (usually done); otherwise
only the audio after the last committed piece is left to transcribe. Each stretch of
audio is decoded once, so the work after the player stops stays small however long
the turn.

With no piece committed, this is transcription at the pause: the whole turn, started
when the player went quiet, ready when the pause turns out to end the turn.

Why pieces are long (settings.stt_piece_min_s, 15 s): with whisper's encoder on a
10 s window, a whole turn of up to ~15 s decodes within the 600 ms pause that ends it
(2 cores, one thread, whisper-base), and pieces cost accuracy: whisper hears less of
the voice at once, and misheard names more often (42 against 30 in four runs of 10-24
spoken multi-sentence turns, pieces of 1-10 s; whisper given the committed text as
context swapped names for ones said before, so it is not given it). Past that length
the whole turn would make the player wait, and pieces win.

    pieces = IncrementalTranscript(transcribe, min_pause_ms=250, min_piece_s=15.0)
    pieces.pause_started(pause, turn_so_far, start=False)  # endpointer events
    pieces.start_pending()                     # no more audio queued
    pieces.ready()                             # (pause, text so far) once decoded
    pieces.pause_ended(pause, silent_ms)
    transcript = await pieces.finish(turn_audio, ended_on_pause)
    pieces.cancel()                            # turn cleared or session gone

A piece whose pause proved too short is stale: its job is cancelled (a job still
queued for the STT threads never runs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from personae.daemon.engines.base import INPUT_SAMPLE_RATE, Transcript

#: audio -> its transcript
Transcribe = Callable[[np.ndarray], Awaitable[Transcript]]


@dataclass(slots=True)
class _Piece:
    pause: int
    end: int  # turn sample where the piece ends
    audio: np.ndarray  # the piece's own audio
    task: asyncio.Task[str] | None = None  # text of the turn up to `end`, once started


class IncrementalTranscript:
    def __init__(
        self,
        transcribe: Transcribe,
        *,
        min_pause_ms: int = 250,
        min_piece_s: float = 15.0,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        """`on_text(text of the turn so far)` is called as each piece is decoded."""
        self._transcribe = transcribe
        self._on_text = on_text
        self.min_pause_ms = min_pause_ms
        self._min_piece = round(min_piece_s * INPUT_SAMPLE_RATE)
        #: text of the committed pieces; None before the first commit
        self._committed: asyncio.Task[str] | None = None
        self._offset = 0  # turn samples the committed pieces cover
        self._pending: _Piece | None = None
        self._tasks: set[asyncio.Task[str]] = set()
        self.committed_pieces = 0

    @property
    def committed_samples(self) -> int:
        return self._offset

    def pause_started(self, pause: int, audio: np.ndarray, *, start: bool = True) -> None:
        """The player went quiet; `audio` is the turn so far. `start=False` holds the
        piece back until `start_pending` (the caller has more audio queued: a pause
        that is already over would only waste a decode)."""
        self._drop_pending()
        if len(audio) <= self._offset:
            return
        self._pending = _Piece(pause, len(audio), audio[self._offset :])
        if start:
            self.start_pending()

    def start_pending(self) -> None:
        """Start transcribing the piece the latest pause closed, if not yet started."""
        piece = self._pending
        if piece is not None and piece.task is None:
            piece.task = self._start(self._committed, piece.audio, f"stt piece {piece.pause}")

    def ready(self) -> tuple[int, str] | None:
        """(pause, text of the turn up to it) once the latest pause's piece is decoded,
        while that pause may still end the turn; None before (or if its decode failed)."""
        piece = self._pending
        if piece is None or piece.task is None or not piece.task.done():
            return None
        if piece.task.cancelled() or piece.task.exception() is not None:
            return None
        return piece.pause, piece.task.result()

    def pause_ended(self, pause: int, silent_ms: int) -> None:
        """The player spoke again: commit the piece the pause closed, or drop it."""
        piece = self._pending
        if piece is None or piece.pause != pause:
            return
        if silent_ms >= self.min_pause_ms and piece.end - self._offset >= self._min_piece:
            self.start_pending()
            self._committed, self._offset = piece.task, piece.end
            self.committed_pieces += 1
            self._pending = None
        else:
            self._drop_pending()

    async def finish(self, audio: np.ndarray, pause: int = -1) -> Transcript:
        """The turn's transcript. `pause`: the pause that ended it (-1: none)."""
        piece = self._pending
        self._pending = None
        if piece is not None and pause >= 0 and piece.pause == pause:
            # nothing was said after that pause: its text stands
            task = piece.task or self._start(self._committed, piece.audio, "stt tail")
        else:
            if piece is not None and piece.task is not None:
                piece.task.cancel()
            task = self._start(self._committed, audio[self._offset :], "stt tail")
        try:
            text = await task
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._offset == 0:
                raise
            # a piece failed: the whole turn in one go, or the error stands
            text = (await self._transcribe(audio)).text.strip()
        finally:
            self.cancel()  # nothing of this turn outlives it
        return Transcript(text=text, duration_s=len(audio) / INPUT_SAMPLE_RATE)

    def cancel(self) -> None:
        """Stop every job of this turn (cleared, or the session is closing)."""
        for task in list(self._tasks):
            task.cancel()
        self._pending = self._committed = None

    def _drop_pending(self) -> None:
        if self._pending is not None and self._pending.task is not None:
            self._pending.task.cancel()
        self._pending = None

    def _start(self, before: asyncio.Task[str] | None, audio: np.ndarray, name: str):
        task = asyncio.create_task(self._piece(before, audio), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[str]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is None and self._on_text is not None:
            self._on_text(task.result())
        elif not task.cancelled():
            task.exception()  # retrieved: an unused piece that failed is not an error

    async def _piece(self, before: asyncio.Task[str] | None, audio: np.ndarray) -> str:
        # Pieces decode side by side (the STT stage has threads for that); the text is
        # joined in order. shield: a stale piece that is cancelled must not cancel the
        # committed ones before it.
        result = await self._transcribe(audio) if len(audio) else None
        previous = await asyncio.shield(before) if before is not None else ""
        text = result.text.strip() if result is not None else ""
        return " ".join(t for t in (previous, text) if t)
