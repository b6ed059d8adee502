"""A room with speakers: the character's reply comes back into the microphone.

`Room` is an acoustic path from the client's speaker to its microphone: a delay
(playback buffer, air, capture buffer), an attenuation, a few early reflections, a
reverberant tail and a noise floor. Two ways to use it:

- `simulate(...)`: the daemon's echo check and endpointer (real VAD) driven on a
  simulated clock, as the listener drives them: for benchmarks, many cases quickly;
- `EchoClient`: a client on a real socket that plays reply audio as it arrives and
  streams the microphone in real time, the room's echo of what it played mixed in,
  with or without the player talking over it (end-to-end tests).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.engines.base import INPUT_SAMPLE_RATE as SR
from personae.daemon.engines.base import VADEngine
from personae.daemon.session.echo import EchoCheck, FarEnd
from personae.daemon.session.endpointing import Endpointer, SpeechStarted
from personae.sdk import protocol as p

#: the microphone's chunks, as clients send them
CHUNK_MS = 20


def fftconvolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full linear convolution through the FFT (numpy only: the daemon's extra has no scipy)."""
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


@dataclass(frozen=True, slots=True)
class Room:
    """Speaker to microphone: `delay_ms` after play-out, `gain_db` down (direct path)."""

    delay_ms: float = 200.0
    gain_db: float = -10.0
    #: reverberation time of the tail (seconds to decay by 60 dB)
    rt60_s: float = 0.25
    #: the tail's energy relative to the direct path (dB)
    tail_db: float = -12.0
    #: the microphone's noise floor (dBFS, white)
    noise_db: float = -65.0
    seed: int = 0

    def impulse_response(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        delay = round(self.delay_ms * SR / 1000)
        length = delay + round(self.rt60_s * SR)
        ir = np.zeros(length, np.float32)
        direct = 10 ** (self.gain_db / 20)
        ir[delay] = direct
        for _ in range(4):  # early reflections, 2-15 ms after the direct sound
            at = delay + int(rng.uniform(0.002, 0.015) * SR)
            ir[at] += direct * rng.uniform(0.2, 0.45) * rng.choice([-1, 1])
        tail = np.arange(length - delay - int(0.015 * SR))
        decay = np.exp(-6.9 * tail / (self.rt60_s * SR))  # -60 dB at rt60
        noise = rng.standard_normal(len(tail)) * decay
        noise *= direct * 10 ** (self.tail_db / 20) / (np.sqrt(np.sum(noise**2)) + 1e-12)
        ir[delay + int(0.015 * SR) :] += noise.astype(np.float32)
        return ir

    def echo(self, played: np.ndarray) -> np.ndarray:
        """What the microphone picks up of `played` (16 kHz), tail included."""
        return fftconvolve(played, self.impulse_response()).astype(np.float32)

    def noise(self, n: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 1)
        return (rng.standard_normal(n) * 10 ** (self.noise_db / 20)).astype(np.float32)


# --- simulated: the echo check and endpointer on a simulated clock -------------------


@dataclass(frozen=True, slots=True)
class Case:
    """A reply (PCM16 at `rate`) played into `room`; `speech` (16 kHz float32), if any,
    starts `speech_at_s` after the reply begins playing."""

    reply: np.ndarray
    rate: int
    room: Room
    speech: np.ndarray | None = None
    speech_at_s: float = 1.0


@dataclass(slots=True)
class Outcome:
    #: when the VAD's turn started (barge-in fired), ms after the reply began playing
    barge_in_ms: int | None
    #: when the player's speech began (ms after the reply began; None: no speech)
    speech_ms: int | None
    starts: list[int] = field(default_factory=list)

    @property
    def latency_ms(self) -> int | None:
        """How long after the player's first word barge-in fired (None without both)."""
        if self.barge_in_ms is None or self.speech_ms is None:
            return None
        return self.barge_in_ms - self.speech_ms


def simulate(
    case: Case,
    vad: VADEngine,
    *,
    echo_check: bool,
    lead_ms: int = 1000,
    max_delay_ms: int = 1000,
    check: EchoCheck | None = None,
    settle_s: float = 1.0,
    min_speech_ms: int = 150,
) -> Outcome:
    """Play `case` through the room into the endpointer the listener would build (the
    echo check first, when on); time is simulated, the audio and VAD are real. The
    daemon sends reply audio `lead_ms` ahead of play-out in 20 ms chunks, as the outbox
    does; microphone chunks arrive every 20 ms. `check` carries a session's echo state
    from an earlier case (a room already measured); `settle_s` of silence follows."""
    t0 = 100.0  # the reply's first sample plays at t0 (simulated seconds)
    far = check.far if check is not None else FarEnd(clock=lambda: 0.0)
    echo = check if check is not None else EchoCheck(far, max_delay_ms=max_delay_ms)
    if check is not None:
        t0 = far.high / SR + 5.0  # after what this session played before
    played = pcm.resample(pcm.int16_to_float32(case.reply), case.rate, SR)
    total = len(played) + int(settle_s * SR) + len(case.room.impulse_response())
    mic = np.zeros(total, np.float32)
    heard = case.room.echo(played)
    mic[: min(total, len(heard))] += heard[:total]
    speech_ms = None
    if case.speech is not None:
        at = int(case.speech_at_s * SR)
        n = min(len(case.speech), total - at)
        mic[at : at + n] += case.speech[:n]
        speech_ms = at * 1000 // SR + _onset_ms(case.speech)
    mic += case.room.noise(total)
    endpointer = Endpointer(vad.stream(), min_speech_ms=min_speech_ms)
    rid = p.new_id("resp")
    step = case.rate * CHUNK_MS // 1000
    sent = 0  # reply samples (at case.rate) handed to the far end so far
    chunk = SR * CHUNK_MS // 1000
    starts: list[int] = []
    for i in range(0, total - chunk + 1, chunk):
        now = t0 + (i + chunk) / SR
        while sent < len(case.reply) and t0 + sent / case.rate - lead_ms / 1000 <= now:
            part = case.reply[sent : sent + step]
            far.play(rid, t0 + sent / case.rate, part.astype("<i2").tobytes(), case.rate)
            sent += len(part)
        audio, heard = mic[i : i + chunk], None
        if echo_check:  # as the listener does: the VAD judges the cleaned microphone
            heard = echo.process(audio, now)
            audio = echo.turn
        for event in endpointer.feed(audio, heard):
            if isinstance(event, SpeechStarted):  # the moment it fires, in audio time
                starts.append((i + chunk) * 1000 // SR)
    return Outcome(starts[0] if starts else None, speech_ms, starts)


def _onset_ms(speech: np.ndarray) -> int:
    """Where speech begins: the first 10 ms whose level is within 30 dB of its loudest."""
    frames = speech[: len(speech) // 160 * 160].reshape(-1, 160)
    level = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.nonzero(level > level.max() * 10 ** (-30 / 20))[0]
    return int(loud[0]) * 10 if len(loud) else 0


# --- real: a client on a socket in a room ---------------------------------------------


class EchoClient:
    """Plays a session's reply audio as it arrives, in real time, and streams the
    microphone back in real time: the room's echo of what played, the player's `speech`
    `speech_at_s` after the reply began, and the room's noise.

        client = EchoClient(session, room, speech=speak("Wait, stop."), speech_at_s=1.0)
        events = await client.run(until=lambda e: e.type == "response.done")
    """

    def __init__(
        self,
        session,  # personae.sdk.Session
        room: Room,
        *,
        speech: np.ndarray | None = None,
        speech_at_s: float = 1.0,
        output_rate: int = 24000,
        tail_s: float = 1.5,
    ) -> None:
        self._session = session
        self._room = room
        self._ir = room.impulse_response()
        self._speech = speech
        self._speech_at = speech_at_s
        self._rate = output_rate
        self._tail = tail_s
        self._play_start: float | None = None  # clock when the first reply sample played
        self._played = np.zeros(0, np.float32)  # 16 kHz, from _play_start on
        self._resampler = pcm.StreamResampler(output_rate, SR)
        self._noise = room.noise(SR * 120)
        self.events: list[p.ServerEvent] = []
        #: the player's speech began this long after the reply began playing (ms)
        self.speech_ms = int(speech_at_s * 1000) + _onset_ms(speech) if speech is not None else None
        #: where the reply began playing in the microphone stream sent (ms)
        self.play_start_ms: int | None = None

    async def run(self, *, until, timeout: float = 120.0) -> list[p.ServerEvent]:
        """Until an event satisfies `until` (then `tail_s` more of microphone)."""
        done = asyncio.Event()
        mic = asyncio.create_task(self._microphone(done))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self._session.next_event()
                    self.events.append(event)
                    if isinstance(event, p.OutputAudioDelta):
                        self._play(event.delta)
                    if until(event):
                        break
            await asyncio.sleep(self._tail)
        finally:
            done.set()
            await mic
        return self.events

    def _play(self, delta: bytes) -> None:
        if self._play_start is None:
            self._play_start = time.monotonic()
        x = self._resampler.process(pcm.pcm16_to_float32(delta))
        # back to back from the first chunk (a late chunk plays late: an underrun)
        due = round((time.monotonic() - self._play_start) * SR)
        if due > len(self._played):
            self._played = np.concatenate([self._played, np.zeros(due - len(self._played))])
        self._played = np.concatenate([self._played, x]).astype(np.float32)

    def _mic(self, start: int, stop: int) -> np.ndarray:
        """Microphone samples [start, stop), counted from the reply's first play-out."""
        n = stop - start
        out = self._noise[start % len(self._noise) :][:n].copy()
        if len(out) < n:
            out = np.concatenate([out, np.zeros(n - len(out), np.float32)])
        lo = max(0, start - len(self._ir) + 1)
        src = self._played[lo:stop]
        if len(src):
            full = fftconvolve(src, self._ir)
            seg = full[start - lo : stop - lo][:n]
            out[: len(seg)] += seg.astype(np.float32)
        if self._speech is not None:
            at = int(self._speech_at * SR)
            a, b = max(start, at), min(stop, at + len(self._speech))
            if b > a:
                out[a - start : b - start] += self._speech[a - at : b - at]
        return out

    async def _microphone(self, done: asyncio.Event) -> None:
        """20 ms chunks in real time: silence until the reply plays, then the room."""
        chunk = SR * CHUNK_MS // 1000
        began = time.monotonic()
        sent = 0  # samples since `began`
        while not done.is_set():
            now = time.monotonic()
            if (now - began) * SR < sent + chunk:
                await asyncio.sleep((sent + chunk) / SR - (now - began))
                continue
            if self._play_start is None:
                audio = np.zeros(chunk, np.float32)
            else:
                offset = round((self._play_start - began) * SR)
                if self.play_start_ms is None:
                    self.play_start_ms = offset * 1000 // SR
                audio = (
                    self._mic(sent - offset, sent - offset + chunk)
                    if sent >= offset
                    else np.zeros(chunk, np.float32)
                )
            sent += chunk
            await self._session.send(p.InputAudioBufferAppend(audio=pcm.float32_to_pcm16(audio)))
