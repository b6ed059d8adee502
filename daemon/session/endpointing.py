"""Turn boundaries from voice activity, in audio time (deterministic, no wall clock)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
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
class PauseLasted:
    """A pause has lasted `check_ms`: time to ask an end-of-turn model about the turn."""

    at_ms: int
    audio: np.ndarray  # the turn so far, the pause included
    pause: int


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    at_ms: int
    audio: np.ndarray  # float32 16 kHz, the turn with its prefix padding
    #: True when the turn hit the length limit rather than a pause
    truncated: bool = False
    #: the pause that ended the turn (-1 when it did not end on a pause); a turn the
    #: client ends during a pause names that pause too
    pause: int = -1
    #: True when the turn ended after the shorter silence, its transcript looking complete
    complete: bool = False


Event = SpeechStarted | PauseStarted | PauseLasted | PauseEnded | SpeechEnded

#: How far back a turn reaches before the VAD heard speech, when what it judged had
#: audio taken out (the echo check, before it knows the room, treats every plausible
#: delay as echo for up to a second of reply audio): "Wait. Mara, where is the old
#: mill?" said over a session's first reply lost its first words to that, and went to
#: the character who was speaking.
HIDDEN_MAX_MS = 1000

#: last words that leave a sentence hanging, whatever punctuation whisper put after them
DANGLING = frozenset("and but so or nor because um uh er erm hmm the a an to of".split())
#: words of a line that only calls for attention ("Hey Mara." before the question, at a
#: pause after the name: whisper writes that as a sentence of its own)
ADDRESSING = frozenset(
    "hey hi hello oh ok okay well so excuse me listen look wait yo um uh er erm hmm ah".split()
)
_CLOSERS = "\"'”’)]»"
_WORD = re.compile(r"[\w'’-]+")


def looks_complete(text: str, names: Iterable[str] = ()) -> bool:
    """Whether a transcript reads as a finished utterance: it ends with `.`, `?` or `!`
    (not an ellipsis, which whisper writes for a voice that trails off), not on a
    conjunction, article or filler ("and then I went to the.", "um."), and says more
    than a greeting or `names` (the characters the player may be calling: "Bram.")."""
    text = text.strip().rstrip(_CLOSERS).rstrip()
    if not text or text[-1] not in ".?!" or text.endswith(("...", "…", "..")):
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if not words or words[-1] in DANGLING:
        return False
    calling = ADDRESSING.union(w.lower() for n in names for w in _WORD.findall(n))
    return not calling.issuperset(words)


def ends_open(text: str, names: Iterable[str] = ()) -> bool:
    """Whether a transcript cannot be a whole turn, whatever its punctuation: nothing
    said, a last word that leaves it hanging ("...and", "the", "um"), or only a greeting
    or `names` ("Hey Mara," before the question). Vetoes the end-of-turn model."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words or words[-1] in DANGLING:
        return True
    calling = ADDRESSING.union(w.lower() for n in names for w in _WORD.findall(n))
    return calling.issuperset(words)


class Endpointer:
    """Feeds 16 kHz audio through a VAD stream and reports where turns start and end.

    Speech starts after `min_speech_ms` of frames above `threshold`; it ends after
    `silence_ms` below `threshold - 0.15` (hysteresis keeps a breath from ending a turn),
    or after `complete_ms` once the caller said the turn so far looks complete
    (`mark_complete`: its transcript, begun at the pause, reads as a finished sentence).
    With `check_ms`, a pause that lasts that long is reported (`PauseLasted`) so the
    caller can ask an end-of-turn model and end the turn then (`end_at_pause`).
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
        complete_ms: int = 0,
        check_ms: int = 0,
    ) -> None:
        self._vad = vad
        self._frame = vad.frame_samples
        self.threshold = threshold
        self._off = max(0.05, threshold - 0.15)
        self._min_speech = self._frames(min_speech_ms)
        self._silence = self._frames(silence_ms)
        self._prefix = self._frames(prefix_ms)
        self._max_frames = int(max_turn_s * INPUT_SAMPLE_RATE / self._frame)
        #: silent frames (at least complete_ms) that end a turn marked complete; None = off
        #: (0, or not shorter than silence_ms)
        self._complete: int | None = (
            math.ceil(complete_ms * INPUT_SAMPLE_RATE / 1000 / self._frame)
            if 0 < complete_ms < silence_ms
            else None
        )
        self._complete_pause = -1  # the pause mark_complete named, while it lasts
        #: silent frames after which a pause is reported as PauseLasted; None = never
        #: (at least 2: the first silent frame reports PauseStarted)
        self._check: int | None = max(2, self._frames(check_ms)) if check_ms > 0 else None
        self._pending = np.zeros(0, dtype=np.float32)
        self._heard = np.zeros(0, dtype=np.float32)  # feed's `heard`, frame for frame
        self._frames_seen = 0
        self._history: list[np.ndarray] = []  # recent frames while silent (prefix padding)
        #: consecutive recent frames the VAD judged with audio taken out (echo.py): the
        #: player's first words may be in them, so the turn keeps them too
        self._hidden = 0
        self._max_hidden = self._frames(HIDDEN_MAX_MS)
        self._turn: list[np.ndarray] = []
        self._run = 0  # consecutive speech frames (before start) or silent frames (after)
        self._pauses = 0
        self.speaking = False

    def _frames(self, ms: int) -> int:
        return max(1, round(ms * INPUT_SAMPLE_RATE / 1000 / self._frame))

    def _ms(self, frames: int) -> int:
        return frames * self._frame * 1000 // INPUT_SAMPLE_RATE

    @property
    def ends_early(self) -> bool:
        """Whether a turn marked complete ends after the shorter silence."""
        return self._complete is not None

    def mark_complete(self, pause: int) -> None:
        """The turn up to `pause` looks complete: if that pause is still going on, the turn
        ends at the next frame fed once the pause has lasted `complete_ms` (at once, if it
        already has). A pause that is over, or another one, is ignored."""
        if self._complete is not None and self.speaking and self._run and pause == self._pauses:
            self._complete_pause = pause

    def end_at_pause(self, pause: int) -> SpeechEnded | None:
        """End the turn now if `pause` is still going on (an end-of-turn model called it
        complete); None when the player has spoken again or the turn has ended."""
        if not (self.speaking and self._run and pause == self._pauses):
            return None
        audio = np.concatenate(self._turn)
        self._turn, self._run, self.speaking = [], 0, False
        self._complete_pause = -1
        return SpeechEnded(self._ms(self._frames_seen), audio, pause=pause, complete=True)

    def feed(self, audio: np.ndarray, heard: np.ndarray | None = None) -> list[Event]:
        """`audio` makes the turns; `heard` (as long), if given, is what the VAD judges
        instead: the microphone less the character's echo (echo.py), whose subtraction
        would only cost the transcript words."""
        events: list[Event] = []
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        if heard is not None:
            self._heard = np.concatenate([self._heard, heard.astype(np.float32, copy=False)])
        n = len(self._pending) // self._frame
        for i in range(n):
            frame = self._pending[i * self._frame : (i + 1) * self._frame]
            judged = self._heard[i * self._frame : (i + 1) * self._frame]
            event = self._step(frame, judged if len(judged) == self._frame else None)
            if event is not None:
                events.append(event)
        self._pending = self._pending[n * self._frame :]
        self._heard = self._heard[n * self._frame :]
        return events

    def _step(self, frame: np.ndarray, heard: np.ndarray | None = None) -> Event | None:
        prob = self._vad.probability(frame if heard is None else heard)
        self._frames_seen += 1
        if not self.speaking:
            self._history.append(frame)
            self._run = self._run + 1 if prob >= self.threshold else 0
            taken = heard is not None and float(heard @ heard) < 0.5 * float(frame @ frame)
            if taken:
                self._hidden += 1
            elif not self._run:  # neither hidden nor the speech it led up to
                self._hidden = 0
            keep = self._prefix + self._run + min(self._hidden, self._max_hidden)
            if len(self._history) > keep:
                del self._history[: len(self._history) - keep]
            if self._run >= self._min_speech:
                self.speaking = True
                self._turn = list(self._history)
                self._history = []
                self._run = self._hidden = 0
                return SpeechStarted(self._ms(self._frames_seen - self._min_speech))
            return None
        self._turn.append(frame)
        if prob >= self._off and self._run:
            silent = self._run
            self._run = 0
            self._complete_pause = -1
            if len(self._turn) < self._max_frames:
                return PauseEnded(self._ms(self._frames_seen - 1), self._pauses, self._ms(silent))
        self._run = self._run + 1 if prob < self._off else 0
        complete = (
            self._complete is not None
            and self._complete_pause == self._pauses
            and self._run >= self._complete
        )
        early = complete and self._run < self._silence
        ended = self._run >= self._silence or complete
        if ended or len(self._turn) >= self._max_frames:
            audio = np.concatenate(self._turn)
            self.speaking = False
            self._turn = []
            self._run = 0
            self._complete_pause = -1
            return SpeechEnded(
                self._ms(self._frames_seen),
                audio,
                not ended,
                self._pauses if ended else -1,
                early,
            )
        if self._run == 1:
            # A pause begins: the caller may transcribe now and have the text ready
            # when the pause turns out to be the end of the turn.
            self._pauses += 1
            speech = np.concatenate(self._turn[:-1]) if len(self._turn) > 1 else self._turn[0]
            return PauseStarted(self._ms(self._frames_seen - 1), speech, self._pauses)
        if self._run == self._check:
            return PauseLasted(
                self._ms(self._frames_seen), np.concatenate(self._turn), self._pauses
            )
        return None

    def force_end(self) -> SpeechEnded | None:
        """End the turn in progress now (the client committed); None if not speaking."""
        if not self.speaking:
            return None
        audio = np.concatenate([*self._turn, self._pending])
        at = self._ms(self._frames_seen)
        pause = self._pauses if self._run else -1
        self._pending = np.zeros(0, dtype=np.float32)
        self._heard = np.zeros(0, dtype=np.float32)
        self._turn, self._run, self.speaking = [], 0, False
        self._complete_pause = -1
        return SpeechEnded(at, audio, pause=pause)

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._heard = np.zeros(0, dtype=np.float32)
        self._history, self._turn = [], []
        self._run = self._hidden = 0
        self._complete_pause = -1
        self.speaking = False
        self._vad.reset()
