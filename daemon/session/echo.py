"""Echo-aware server VAD: the character's own voice coming back through the player's
microphone is not the player barging in.

On speakers, reply audio reaches the microphone some 100-300 ms after it plays, 6-20 dB
down and coloured by the room. The daemon knows exactly what it sent and when it is due
to play (the outbox's schedule), so before the VAD hears the microphone this module
takes out what that audio explains:

    outbox ─► FarEnd: reply audio at 16 kHz, on the daemon's clock
                 │ delay d: GCC-PHAT of the last second of microphone over 0..max_delay
    mic ─► STFT ─► gain max(0, 1 - β·C(f)·max_k|R(t-d-k)| / |M|) ─► gate ─► ISTFT ─► endpointer

C(f) is the room's coupling per frequency, a least-squares fit of the microphone on the
aligned reference (unbiased while the player talks over it, whatever the attenuation);
the max over the last few reference frames covers the room's reverberation. What the
player says over the echo survives wherever it is louder than the echo, which is what
the VAD needs; the echo alone leaves near-silence, so it neither barges in nor becomes
a turn. Until the delay is found (the first reply of a session) every plausible delay
counts as echo, for at most a second of reply audio (then no echo path is assumed, as
with headphones, until one is found). With no reply audio about, the microphone passes through untouched.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from personae.daemon import audio as pcm
from personae.daemon.engines.base import INPUT_SAMPLE_RATE as SR

if TYPE_CHECKING:
    from personae.daemon.session.outbox import Outbox
    from personae.daemon.settings import Settings

log = logging.getLogger("personae.session")

FFT = 512  # 32 ms frames
HOP = FFT // 2
#: sqrt of a periodic Hann: analysis x synthesis windows overlap-add to exactly 1
_WINDOW = np.sqrt(np.hanning(FFT + 1)[:FFT]).astype(np.float32)
#: reference frames (16 ms apart) whose loudest bin counts as the room's tail
TAIL_FRAMES = 4
#: over-subtraction: the echo estimate is scaled up so no echo bin survives
OVERSUBTRACT = 2.0
#: reference samples this quiet are silence
_SILENT_REF = 1e-4
#: what is left of a frame this far (dB) below the echo heard lately is the echo's
#: residue (reverberation beyond the tail frames, misestimated bins): silenced, as the
#: VAD takes even a -60 dBFS whisper of speech-shaped residue for speech
GATE_DB = 15.0
#: how fast "the echo heard lately" fades: 60 dB per this many seconds, slower than
#: the reverberation of ordinary rooms
_GATE_RT60_S = 0.5
#: coupling assumed before any was measured: echo as loud as the reply (0 dB)
_PRIOR_COUPLING = 1.0
#: reply audio heard (seconds) before an echo path not found is taken to be none
#: (headphones): the conservative guess stops delaying the player's barge-in
_PRIOR_S = 1.0
#: how fast the coupling follows the room (seconds)
_COUPLING_S = 0.5
#: microphone kept for the delay search (seconds), and how often it runs (frames)
_DELAY_WINDOW_S = 1.0
_DELAY_EVERY = 6
#: GCC-PHAT peak over its spread that counts as a delay found. A real echo path scores
#: 30-80 from the first search (simulated rooms, -6 to -22 dB, 80-320 ms); with no echo
#: path (headphones, a bench client) a player talking over the reply's tail scores up to
#: 12, and a delay adopted from that cuts the player's own first words (it cost "Mara,"
#: in "Mara, do the town records...", so the line went to the last speaker)
_DELAY_CONFIDENCE = 20.0


class FarEnd:
    """Reply audio as the client plays it, resampled to 16 kHz, on the daemon's clock.

    The outbox calls `play` as each chunk leaves, with the time it is due to play (the
    client plays chunks back to back from the first); the echo check reads it back by
    sample index (`index(t)`). A ring of `seconds`: older audio reads as silence."""

    def __init__(self, *, seconds: float = 8.0, clock: Callable[[], float] = time.monotonic):
        self._ring = np.zeros(int(seconds * SR), np.float32)
        self._epoch = clock()
        self._lock = threading.Lock()
        #: response id -> (next sample index, its resampler): its chunks follow on
        self._streams: collections.OrderedDict[str, tuple[int, pcm.StreamResampler]] = (
            collections.OrderedDict()
        )
        #: one past the last sample written (absolute index); earlier than any = none
        self.high = 0
        #: one past the last sample that was not silence
        self.loud_end = -(1 << 40)

    def index(self, t: float) -> int:
        return round((t - self._epoch) * SR)

    def play(self, response_id: str, due: float, pcm16: bytes, rate: int) -> None:
        """Reply audio `pcm16` at `rate`, due to play at clock `due` (its first sample)."""
        stream = self._streams.get(response_id)
        if stream is None:
            start, resampler = self.index(due), pcm.StreamResampler(rate, SR)
        else:
            start, resampler = stream
        x = resampler.process(pcm.pcm16_to_float32(pcm16))
        self._streams[response_id] = (start + len(x), resampler)
        self._streams.move_to_end(response_id)
        while len(self._streams) > 8:
            self._streams.popitem(last=False)
        self._write(start, x)

    def _write(self, start: int, x: np.ndarray) -> None:
        n = len(self._ring)
        if len(x) > n:
            start, x = start + len(x) - n, x[-n:]
        with self._lock:
            if start > self.high:  # a gap: what the ring held there is from long ago
                self._put(self.high, np.zeros(min(start - self.high, n), np.float32))
            self._put(start, x)
            self.high = max(self.high, start + len(x))
            if len(x) and np.max(np.abs(x)) > _SILENT_REF:
                self.loud_end = max(self.loud_end, start + len(x))

    def _put(self, start: int, x: np.ndarray) -> None:
        n = len(self._ring)
        idx = (start + np.arange(len(x))) % n
        self._ring[idx] = x

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) by absolute index; unwritten or forgotten ones are 0."""
        out = np.zeros(max(0, stop - start), np.float32)
        with self._lock:
            lo, hi = max(start, self.high - len(self._ring)), min(stop, self.high)
            if hi > lo:
                out[lo - start : hi - start] = self._ring[np.arange(lo, hi) % len(self._ring)]
        return out


class EchoCheck:
    """One session's microphone with the character's echo taken out (see the module)."""

    def __init__(
        self, far: FarEnd, *, max_delay_ms: int = 1000, oversubtract: float = OVERSUBTRACT
    ):
        self.far = far
        self._max_delay = max_delay_ms * SR // 1000
        self._beta = oversubtract
        self._pending = np.zeros(FFT - HOP, np.float32)  # input not yet framed (+ history)
        self._ola = np.zeros(FFT, np.float32)
        #: the microphone as it came in, delayed as `process`'s output is (set by it)
        self._raw = np.zeros(FFT - HOP, np.float32)
        self.raw = np.zeros(0, np.float32)
        #: what the turn's audio should be, as long as the output: the cleaned microphone
        #: once the echo's delay is known (whisper then hears the player, not the
        #: character), the microphone as it came before (the guess would cost words)
        self.turn = self.raw
        self._lead = FFT - HOP
        self._mic_end: int | None = None  # absolute index of the sample after `_pending`
        self._history = collections.deque[np.ndarray](maxlen=int(_DELAY_WINDOW_S * SR / HOP))
        self._frames = 0
        #: the echo's delay behind the far end's schedule, in samples; None = not found
        self.delay: int | None = None
        self.confidence = 0.0
        bins = FFT // 2 + 1
        self._sxy = np.full(bins, _PRIOR_COUPLING * 1e-6, np.complex64)
        self._sxx = np.full(bins, 1e-6, np.float32)
        self._alpha = float(np.exp(-HOP / (SR * _COUPLING_S)))
        self._ref_mags = collections.deque[np.ndarray](maxlen=TAIL_FRAMES + 1)
        #: energy of the echo heard lately, fading (the gate's reference)
        self._echo_level = 0.0
        self._fade = 10 ** (-60 / 10 * HOP / (SR * _GATE_RT60_S))
        self._gate = 10 ** (-GATE_DB / 10)
        #: frames processed with reply audio about
        self.frames_checked = 0
        #: of them, frames before any delay was found (the conservative guess)
        self.frames_unlocked = 0

    @property
    def coupling(self) -> np.ndarray:
        """|C(f)|: how loud the echo is at each frequency, relative to the reply."""
        return np.abs(self._sxy) / self._sxx

    def process(self, audio: np.ndarray, arrived: float) -> np.ndarray:
        """16 kHz microphone audio that arrived at clock `arrived` -> what the VAD should
        hear: the same samples, the echo taken out, FFT - HOP to FFT - 1 of them held back
        until the next call (whole hops only); `raw` is the input as far as the output."""
        audio = np.asarray(audio, np.float32)
        self._raw = np.concatenate([self._raw, audio])
        end = self.far.index(arrived)
        start = end - len(audio)
        # anchored once; again when the client's timing jumps (a stall, a burst)
        if self._mic_end is None or abs(self._mic_end - start) > SR // 4:
            self._mic_end = start
        self._mic_end += len(audio)
        buf = np.concatenate([self._pending, audio])
        hops = (len(buf) - (FFT - HOP)) // HOP
        out = np.empty(hops * HOP, np.float32)
        first_end = self._mic_end - (len(buf) - FFT)  # absolute end of the first frame
        for h in range(hops):
            frame = buf[h * HOP : h * HOP + FFT]
            y = self._frame(frame, first_end + h * HOP)
            self._ola += y
            out[h * HOP : (h + 1) * HOP] = self._ola[:HOP]
            self._ola = np.concatenate([self._ola[HOP:], np.zeros(HOP, np.float32)])
        self._pending = buf[hops * HOP :]
        self.raw, self._raw = self._raw[: len(out)], self._raw[len(out) :]
        self.turn = out if self.delay is not None else self.raw
        if self._lead:  # the stream's first samples are silence before it began: dropped,
            # so the output's sample k is the input's sample k (audio_start_ms stays exact)
            drop = min(self._lead, len(out))
            self._lead -= drop
            out, self.raw, self.turn = out[drop:], self.raw[drop:], self.turn[drop:]
        return out

    def _frame(self, frame: np.ndarray, end: int) -> np.ndarray:
        spec = np.fft.rfft(frame * _WINDOW)
        self._history.append(frame[-HOP:].copy())
        reach = self._max_delay + (TAIL_FRAMES + 2) * HOP + FFT
        if self.far.loud_end < end - reach:  # no reply audio about: untouched
            self._ref_mags.clear()
            self._echo_level = 0.0
            return np.fft.irfft(spec, FFT).astype(np.float32) * _WINDOW
        self.frames_checked += 1
        self._frames += 1
        if self._frames % _DELAY_EVERY == 0:
            self._find_delay(end)
        mag = np.abs(spec)
        if self.delay is None:
            self.frames_unlocked += 1
            echo = self._any_delay(end) if self.frames_unlocked <= _PRIOR_S * SR / HOP else 0.0
        else:
            ref = np.fft.rfft(self.far.read(end - self.delay - FFT, end - self.delay) * _WINDOW)
            self._ref_mags.append(np.abs(ref))
            if np.max(np.abs(ref)) > _SILENT_REF:
                a = self._alpha
                self._sxy = a * self._sxy + (1 - a) * spec * np.conj(ref)
                self._sxx = a * self._sxx + (1 - a) * np.abs(ref) ** 2
            echo = self.coupling * np.max(np.stack(self._ref_mags), axis=0)
        gain = np.clip(1.0 - self._beta * echo / np.maximum(mag, 1e-9), 0.0, 1.0)
        self._echo_level = max(float(np.sum(np.square(echo))), self._echo_level * self._fade)
        if float(np.sum(np.square(mag * gain))) < self._echo_level * self._gate:
            gain = 0.0
        return np.fft.irfft(spec * gain, FFT).astype(np.float32) * _WINDOW

    def _any_delay(self, end: int) -> np.ndarray:
        """Before the delay is known: the loudest reference bin at any plausible delay."""
        span = self.far.read(end - self._max_delay - FFT - TAIL_FRAMES * HOP, end)
        frames = np.lib.stride_tricks.sliding_window_view(span, FFT)[::HOP]
        mags = np.abs(np.fft.rfft(frames * _WINDOW, axis=1))
        return self.coupling * mags.max(axis=0)

    def _find_delay(self, end: int) -> None:
        """GCC-PHAT of the last second of microphone against the reference at every
        delay in 0..max_delay; adopted when its peak stands well out of the rest."""
        if len(self._history) < self._history.maxlen // 2:
            return
        mic = np.concatenate(self._history)
        ref = self.far.read(end - len(mic) - self._max_delay, end)
        if np.max(np.abs(ref)) <= _SILENT_REF or np.max(np.abs(mic)) <= _SILENT_REF:
            return
        n = 1 << int(np.ceil(np.log2(len(mic) + len(ref))))
        cross = np.fft.rfft(ref, n) * np.conj(np.fft.rfft(mic, n))
        cc = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-12), n)
        # cc[k] = sum_i ref[i + k] mic[i]; delay d lines mic[i] up with ref[i + max - d]
        lags = cc[self._max_delay :: -1][: self._max_delay + 1]
        best = int(np.argmax(lags))
        spread = float(np.std(lags)) + 1e-12
        confidence = float(lags[best]) / spread
        if confidence < _DELAY_CONFIDENCE:
            return
        self.confidence = confidence
        if self.delay is None or abs(best - self.delay) > HOP // 4:
            if self.delay is not None:  # the room changed: its coupling is measured anew
                c = self.coupling
                self._sxy, self._sxx = (
                    (c * 1e-6).astype(np.complex64),
                    np.full_like(self._sxx, 1e-6),
                )
            self._ref_mags.clear()
        if self.delay != best:
            log.debug("echo delay %d ms (confidence %.1f)", best * 1000 // SR, confidence)
        self.delay = best


def for_session(settings: Settings, outbox: Outbox) -> EchoCheck | None:
    """The session's echo check, fed the reply audio its outbox sends (None: off)."""
    if not settings.echo_check:
        return None
    far = FarEnd()
    outbox.on_audio = far.play
    return EchoCheck(far, max_delay_ms=settings.echo_max_delay_ms)
