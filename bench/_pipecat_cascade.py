"""The same voice cascade built in Pipecat, for `personae bench pipecat` (run in its own venv).

Pipecat 1.14 as its documentation builds a local voice agent: Silero VAD and Smart Turn
v3.2 in the user aggregator (Pipecat's defaults), faster-whisper STT, an OpenAI-compatible
LLM, Piper TTS. The models are personae's own files (whisper-base, the Piper voice) and
the LLM is personae's `/v1/chat/completions` on the same SmolLM2 engine, so only the
cascade differs. No transport: a source processor plays each question's audio into the
pipeline in real time (20 ms frames), then silence, as a microphone would; a sink notes
when the transcript, the first token and the first audio come, from the last byte of
speech. This file imports no personae module: it runs under bench/.pipecat-venv.

    python bench/_pipecat_cascade.py JOB.json   # writes the JSON lines of its results to stdout
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.workers.runner import WorkerRunner

RATE = 16_000
FRAME = RATE * 2 // 50  # 20 ms of PCM16


class Clock:
    """The current turn's marks, from the last byte of its speech."""

    def __init__(self) -> None:
        self.heard = asyncio.Event()
        self.t0 = 0.0
        self.marks: dict = {}
        self.turn: dict = {}

    def start(self, turn: dict) -> None:
        self.t0, self.marks, self.turn = time.perf_counter(), {}, turn
        self.heard.clear()

    def finish(self) -> None:
        print(json.dumps({"id": self.turn.get("id"), **self.marks}), flush=True)
        self.t0 = 0.0

    def mark(self, key: str, **extra) -> None:
        if self.t0 and key not in self.marks:
            self.marks[key] = (time.perf_counter() - self.t0) * 1000
            self.marks.update(extra)
        if "first_audio_chunk" in self.marks and "llm_done" in self.marks:
            self.heard.set()


class Microphone(FrameProcessor):
    """Plays each turn's audio in real time, then silence until the reply has come."""

    def __init__(self, turns: list[dict], clock: Clock, done) -> None:
        super().__init__()
        self._turns = turns
        self._sounds = [Path(turn["pcm"]).read_bytes() for turn in turns]
        self._clock = clock
        self._done = done
        self._task: asyncio.Task | None = None

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._task is None:
            self._task = asyncio.create_task(self._play())

    async def _frame(self, data: bytes, due: float) -> float:
        await self.push_frame(InputAudioRawFrame(audio=data, sample_rate=RATE, num_channels=1))
        due += 0.02
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        return due

    async def _play(self) -> None:
        due = time.perf_counter()
        for _ in range(50):  # a second of a quiet room first
            due = await self._frame(bytes(FRAME), due)
        for turn, audio in zip(self._turns, self._sounds, strict=True):
            for i in range(0, len(audio), FRAME):
                due = await self._frame(audio[i : i + FRAME].ljust(FRAME, b"\0"), due)
            self._clock.start(turn)
            deadline = time.perf_counter() + turn.get("timeout_s", 60)
            while not self._clock.heard.is_set() and time.perf_counter() < deadline:
                due = await self._frame(bytes(FRAME), due)
            for _ in range(int(turn.get("after_s", 1.0) * 50)):  # the rest of the reply
                due = await self._frame(bytes(FRAME), due)
            self._clock.finish()
        await self._done()


class Probe(FrameProcessor):
    """Passes every frame on; marks the first of each kind it watches."""

    def __init__(self, clock: Clock, kinds: dict) -> None:
        super().__init__()
        self._clock = clock
        self._kinds = kinds

    async def process_frame(self, frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        key = self._kinds.get(type(frame))
        if key == "stt":
            self._clock.mark(key, transcript=frame.text)
        elif key:
            self._clock.mark(key)


async def main(job: dict) -> None:
    stt = WhisperSTTService(
        settings=WhisperSTTService.Settings(model=job["whisper_dir"], no_speech_prob=0.6),
        device="cpu",
        compute_type="int8",
    )
    llm = OpenAILLMService(
        api_key=job.get("api_key") or "none",
        base_url=job["llm_url"],
        settings=OpenAILLMService.Settings(model=job["model"], max_completion_tokens=48),
    )
    tts = PiperTTSService(
        settings=PiperTTSService.Settings(voice=job["piper_voice"]),
        download_dir=Path(job["piper_dir"]),
    )
    pair = LLMContextAggregatorPair(
        LLMContext(), user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    clock = Clock()
    worker: PipelineWorker

    async def done() -> None:
        await worker.cancel(reason="all turns measured")

    pipeline = Pipeline(
        [
            Microphone(job["turns"], clock, done),
            stt,
            Probe(clock, {TranscriptionFrame: "stt"}),
            pair.user(),
            llm,
            Probe(clock, {LLMTextFrame: "first_token", LLMFullResponseEndFrame: "llm_done"}),
            tts,
            Probe(clock, {TTSAudioRawFrame: "first_audio_chunk"}),
            pair.assistant(),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=RATE, enable_metrics=False),
        idle_timeout_secs=None,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
