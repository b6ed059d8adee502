"""A turn transcribed piece by piece: committed pieces, the tail, stale pieces, no leaks."""

from __future__ import annotations

import asyncio

import numpy as np

from personae.daemon.engines.base import Transcript
from personae.daemon.session.endpointing import (
    Endpointer,
    PauseEnded,
    PauseStarted,
    SpeechEnded,
)
from personae.daemon.session.incremental import IncrementalTranscript
from personae.daemon.testing import EnergyVADStream

SR = 16_000


def audio(seconds: float, start: float = 0.0) -> np.ndarray:
    """A stand-in for speech whose first sample says where in the turn it starts."""
    out = np.full(round(seconds * SR), 0.5, dtype=np.float32)
    out[0] = start
    return out


class Recorder:
    """A transcriber that says which stretch of the turn it heard, after `gate` opens."""

    def __init__(self, *, gated: bool = False) -> None:
        self.calls: list[tuple[float, float]] = []  # (start s, seconds)
        self.cancelled = 0
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()

    async def __call__(self, x: np.ndarray) -> Transcript:
        self.calls.append((round(float(x[0]), 2), round(len(x) / SR, 2)))
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Transcript(text=f"[{len(x) / SR:.1f}]")


def turn(*parts: float) -> list[np.ndarray]:
    """Audio of the turn up to the end of each part (seconds of each part)."""
    out, t = [], 0.0
    for seconds in parts:
        out.append(audio(seconds, t))
        t += seconds
    return [np.concatenate(out[: i + 1]) for i in range(len(out))]


async def test_pieces_closed_by_long_pauses_are_committed_and_only_the_tail_remains() -> None:
    stt = Recorder()
    pieces = IncrementalTranscript(stt, min_pause_ms=250, min_piece_s=1.0)
    first, second, whole = turn(1.5, 2.0, 1.0)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)
    pieces.pause_started(2, second)
    pieces.pause_ended(2, 300)
    assert pieces.committed_pieces == 2 and pieces.committed_samples == len(second)
    result = await pieces.finish(whole)  # the client ended the turn mid-speech
    assert result.text == "[1.5] [2.0] [1.0]"
    assert result.duration_s == len(whole) / SR
    # each stretch of audio decoded once
    assert stt.calls == [(0.0, 1.5), (1.5, 2.0), (3.5, 1.0)]
    assert not pieces._tasks


async def test_a_turn_that_ends_on_a_pause_uses_that_pause_s_piece() -> None:
    stt = Recorder()
    pieces = IncrementalTranscript(stt, min_piece_s=1.0)
    first, second = turn(1.5, 2.0)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)
    pieces.pause_started(2, second)
    await asyncio.sleep(0)
    result = await pieces.finish(np.concatenate([second, np.zeros(SR)]), pause=2)
    assert result.text == "[1.5] [2.0]"
    assert len(stt.calls) == 2  # no work left when the turn ended


async def test_breaths_and_short_pieces_are_not_committed_and_their_jobs_are_cancelled() -> None:
    stt = Recorder(gated=True)
    pieces = IncrementalTranscript(stt, min_pause_ms=250, min_piece_s=1.0)
    first, second, third = turn(0.5, 1.5, 1.0)
    pieces.pause_started(1, first)  # too short a piece
    await asyncio.sleep(0)
    pieces.pause_ended(1, 500)
    pieces.pause_started(2, second)  # too short a pause
    await asyncio.sleep(0)
    pieces.pause_ended(2, 100)
    await asyncio.sleep(0)
    assert pieces.committed_pieces == 0 and stt.cancelled == 2
    stt.gate.set()
    result = await pieces.finish(third)
    assert result.text == "[3.0]" and stt.calls[-1] == (0.0, 3.0)


async def test_a_new_pause_replaces_a_stale_piece_without_touching_committed_text() -> None:
    stt = Recorder(gated=True)
    pieces = IncrementalTranscript(stt, min_piece_s=1.0)
    first, second, _ = turn(1.5, 1.5, 1.0)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)  # committed while still being transcribed
    pieces.pause_started(2, second)
    await asyncio.sleep(0)
    pieces.pause_started(3, second)  # e.g. an unreported resume: piece 2 is stale
    await asyncio.sleep(0)
    stt.gate.set()
    result = await pieces.finish(second, pause=3)
    assert result.text == "[1.5] [1.5]"


async def test_cancel_stops_every_job_and_leaves_nothing_running() -> None:
    stt = Recorder(gated=True)
    pieces = IncrementalTranscript(stt, min_piece_s=1.0)
    first, second = turn(1.5, 1.5)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)
    pieces.pause_started(2, second)
    await asyncio.sleep(0)
    pieces.cancel()
    await asyncio.sleep(0.01)
    assert not pieces._tasks and stt.cancelled >= 1
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("stt ")]


async def test_cancelling_the_turn_cancels_its_pieces() -> None:
    stt = Recorder(gated=True)
    pieces = IncrementalTranscript(stt, min_piece_s=1.0)
    first, second = turn(1.5, 1.5)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)
    finishing = asyncio.create_task(pieces.finish(second))
    await asyncio.sleep(0.01)
    finishing.cancel()
    await asyncio.sleep(0.01)
    assert not pieces._tasks
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("stt ")]


async def test_a_failed_piece_falls_back_to_the_whole_turn() -> None:
    calls = []

    async def flaky(x: np.ndarray) -> Transcript:
        calls.append(len(x) / SR)
        if len(calls) == 1:
            raise RuntimeError("decoder fell over")
        return Transcript(text=f"[{len(x) / SR:.1f}]")

    pieces = IncrementalTranscript(flaky, min_piece_s=1.0)
    first, second = turn(1.5, 1.5)
    pieces.pause_started(1, first)
    pieces.pause_ended(1, 400)
    result = await pieces.finish(second)
    assert result.text == "[3.0]"


def test_endpointer_reports_when_a_pause_ends_and_how_long_it_was() -> None:
    ep = Endpointer(EnergyVADStream(0.02), min_speech_ms=64, silence_ms=600, prefix_ms=0)
    loud, quiet = np.full(SR, 0.5, np.float32), np.zeros(SR // 2, np.float32)
    events = ep.feed(np.concatenate([loud, quiet[: SR * 3 // 10], loud, quiet, quiet]))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "SpeechStarted",
        "PauseStarted",
        "PauseEnded",
        "PauseStarted",
        "SpeechEnded",
    ]
    started, ended = events[1], events[2]
    assert isinstance(started, PauseStarted) and isinstance(ended, PauseEnded)
    assert ended.pause == started.pause and 200 <= ended.silent_ms <= 320
    assert isinstance(events[-1], SpeechEnded) and events[-1].pause == events[3].pause


def test_a_turn_the_client_ends_during_a_pause_names_that_pause() -> None:
    ep = Endpointer(EnergyVADStream(0.02), min_speech_ms=64, silence_ms=600, prefix_ms=0)
    events = ep.feed(np.concatenate([np.full(SR, 0.5, np.float32), np.zeros(3200, np.float32)]))
    pause = events[-1]
    assert isinstance(pause, PauseStarted)
    ended = ep.force_end()
    assert ended is not None and ended.pause == pause.pause
    ep.feed(np.full(SR, 0.5, np.float32))
    ended = ep.force_end()
    assert ended is not None and ended.pause == -1  # mid-speech: no pause to reuse


async def test_a_piece_held_back_costs_nothing_if_its_pause_is_already_over() -> None:
    stt = Recorder()
    pieces = IncrementalTranscript(stt, min_piece_s=1.0)
    first, second, third = turn(1.5, 0.5, 1.0)
    pieces.pause_started(1, first, start=False)  # audio queued behind it: held back
    pieces.pause_ended(1, 100)  # a breath
    pieces.pause_started(2, second, start=False)
    pieces.pause_ended(2, 400)  # a phrase boundary: committed, so it starts now
    pieces.pause_started(3, third, start=False)
    pieces.start_pending()  # caught up with the player
    result = await pieces.finish(np.concatenate([third, np.zeros(SR)]), pause=3)
    assert stt.calls == [(0.0, 2.0), (2.0, 1.0)]
    assert result.text == "[2.0] [1.0]"


async def test_ready_gives_the_latest_pause_s_text_once_it_is_decoded() -> None:
    stt = Recorder(gated=True)
    pieces = IncrementalTranscript(stt, min_pause_ms=250, min_piece_s=1.0)
    first, second, third = turn(1.5, 1.0, 0.5)
    pieces.pause_started(1, first, start=False)
    assert pieces.ready() is None  # held back: not started
    pieces.pause_ended(1, 400)  # committed
    pieces.pause_started(2, second)
    await asyncio.sleep(0)
    assert pieces.ready() is None  # still decoding
    stt.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert pieces.ready() == (2, "[1.5] [1.0]")  # the whole turn so far
    pieces.pause_ended(2, 100)  # a breath: the piece is dropped
    assert pieces.ready() is None
    pieces.pause_started(3, third)
    for _ in range(5):
        await asyncio.sleep(0)
    assert pieces.ready() == (3, "[1.5] [1.5]")
    result = await pieces.finish(third, pause=3)
    assert result.text == "[1.5] [1.5]" and len(stt.calls) == 3
