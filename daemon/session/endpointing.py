"""Turn boundaries from voice activity, in audio time (deterministic, no wall clock)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personae.daemon.engines.base import INPUT_SAMPLE_RATE, VADStream


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_ms: int


@dataclass(frozen=True, slots=True)
class PauseStarted:
    """The player went quiet mid-turn; the turn ends if the pause lasts `silence_ms`."""

    at_ms: int
    audio: np.ndarray  # the turn so far
    pause: int  # sequence number; SpeechEnded.pause names the pause that ended a turn


@dataclass(frozen=True, slots=True)
class PauseEnded:
    """The player spoke again after a pause that did not end the turn."""

    at_ms: int
    pause: int  # the PauseStarted.pause it ends
    silent_ms: int  # how long the pause lasted


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at_ms: int
    audio: np.ndarray  # float32 16 kHz, the turn with its prefix padding
    #: True when the turn hit the length limit rather than a pause
    truncated: bool = False
    #: the pause that ended the turn (-1 when it did not end on a pause); a turn the
    #: client ends during a pause names that pause too
    pause: int = -1


Event = SpeechStarted | PauseStarted | PauseEnded | SpeechEnded


class Endpointer:
    """Feeds 16 kHz audio through a VAD stream and reports where turns start and end.

    Speech starts after `min_speech_ms` of frames above `threshold`; it ends after
    `silence_ms` below `threshold - 0.15` (hysteresis keeps a breath from ending a turn).
    """

    def __init__(
        self,
        vad: VADStream,
        *,
        threshold: float = 0.5,
        min_speech_ms: int = 150,
        silence_ms: int = 600,
        prefix_ms: int = 300,
        max_turn_s: float = 30.0,
    ) -> None:
        self._vad = vad
        self._frame = vad.frame_samples
        self.threshold = threshold
        self._off = max(0.05, threshold - 0.15)
        self._min_speech = self._frames(min_speech_ms)
        self._silence = self._frames(silence_ms)
        self._prefix = self._frames(prefix_ms)
        self._max_frames = int(max_turn_s * INPUT_SAMPLE_RATE / self._frame)
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames_seen = 0
        self._history: list[np.ndarray] = []  # recent frames while silent (prefix padding)
        self._turn: list[np.ndarray] = []
        self._run = 0  # consecutive speech frames (before start) or silent frames (after)
        self._pauses = 0
        self.speaking = False

    def _frames(self, ms: int) -> int:
        return max(1, round(ms * INPUT_SAMPLE_RATE / 1000 / self._frame))

    def _ms(self, frames: int) -> int:
        return frames * self._frame * 1000 // INPUT_SAMPLE_RATE

    def feed(self, audio: np.ndarray) -> list[Event]:
        events: list[Event] = []
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        n = len(self._pending) // self._frame
        for i in range(n):
            frame = self._pending[i * self._frame : (i + 1) * self._frame]
            event = self._step(frame)
            if event is not None:
                events.append(event)
        self._pending = self._pending[n * self._frame :]
        return events

    def _step(self, frame: np.ndarray) -> Event | None:
        prob = self._vad.probability(frame)
        self._frames_seen += 1
        if not self.speaking:
            self._history.append(frame)
            self._run = self._run + 1 if prob >= self.threshold else 0
            keep = self._prefix + self._run
            if len(self._history) > keep:
                del self._history[: len(self._history) - keep]
            if self._run >= self._min_speech:
                self.speaking = True
                self._turn = list(self._history)
                self._history = []
                self._run = 0
                return SpeechStarted(self._ms(self._frames_seen - self._min_speech))
            return None
        self._turn.append(frame)
        if prob >= self._off and self._run:
            silent = self._run
            self._run = 0
            if len(self._turn) < self._max_frames:
                return PauseEnded(self._ms(self._frames_seen - 1), self._pauses, self._ms(silent))
        self._run = self._run + 1 if prob < self._off else 0
        if self._run >= self._silence or len(self._turn) >= self._max_frames:
            truncated = self._run < self._silence
            audio = np.concatenate(self._turn)
            self.speaking = False
            self._turn = []
            self._run = 0
            return SpeechEnded(
                self._ms(self._frames_seen), audio, truncated, -1 if truncated else self._pauses
            )
        if self._run == 1:
            # A pause begins: the caller may transcribe now and have the text ready
            # when the pause turns out to be the end of the turn.
            self._pauses += 1
            speech = np.concatenate(self._turn[:-1]) if len(self._turn) > 1 else self._turn[0]
            return PauseStarted(self._ms(self._frames_seen - 1), speech, self._pauses)
        return None

    def force_end(self) -> SpeechEnded | None:
        """End the turn in progress now (the client committed); None if not speaking."""
        if not self.speaking:
            return None
        audio = np.concatenate([*self._turn, self._pending])
        at = self._ms(self._frames_seen)
        pause = self._pauses if self._run else -1
        self._pending = np.zeros(0, dtype=np.float32)
        self._turn, self._run, self.speaking = [], 0, False
        return SpeechEnded(at, audio, pause=pause)

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._history, self._turn = [], []
        self._run = 0
        self.speaking = False
        self._vad.reset()
