"""Dynamic state of a character toward a player: emotion and relationship.

Emotion is a blend (weights summing to 1) over a small fixed set of emotions, plus an
intensity in [0, 1]. Between events it decays exponentially toward the character's
baseline (its `Temperament`) with a half-life, so an angry smith calms down over a
few minutes of game time; the decay is computed on read from the stored timestamp and
an injectable clock, never by a timer. An event pushes the blend toward the emotions it
evokes and raises the intensity (`StateUpdate.emotions`, strengths in [0, 1]).

Relationship is trust and affinity in [-1, 1], starting at 0. Updates saturate
(`x + d·(1 - x)` upward, `x + d·(1 + x)` downward), so repeated praise approaches but
never passes 1, and a single insult hurts a close friendship less than a new one in
absolute terms. Relationships do not decay.

`appraise_text` turns the player's words into a `StateUpdate` with a small lexicon (see
its docstring); game events build a `StateUpdate` directly. `StateStore` persists the
state per (character, player) and applies updates atomically.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from personae.daemon.characters import VoiceConfig
from personae.daemon.store.models import CharacterStateRow, to_datetime, to_epoch
from personae.daemon.store.sessions import Sessions

Clock = Callable[[], float]

#: The fixed emotion set. "neutral" absorbs whatever no other emotion claims.
EMOTIONS: tuple[str, ...] = ("neutral", "joy", "sadness", "anger", "fear", "surprise", "disgust")

_ADJECTIVE = {
    "neutral": "calm",
    "joy": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fear": "afraid",
    "surprise": "surprised",
    "disgust": "disgusted",
}

#: (rate, pitch) factors at full intensity, interpolated by weight and intensity
_VOICE = {
    "neutral": (1.0, 1.0),
    "joy": (1.08, 1.06),
    "sadness": (0.86, 0.94),
    "anger": (1.10, 1.03),
    "fear": (1.14, 1.09),
    "surprise": (1.05, 1.10),
    "disgust": (0.94, 0.97),
}


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


@dataclass(frozen=True, slots=True)
class EmotionState:
    """A normalised blend over `EMOTIONS` and an intensity in [0, 1]."""

    blend: Mapping[str, float]
    intensity: float = 0.2

    def __post_init__(self) -> None:
        unknown = set(self.blend) - set(EMOTIONS)
        if unknown:
            raise ValueError(f"unknown emotions {sorted(unknown)}; known: {', '.join(EMOTIONS)}")
        if any(not math.isfinite(w) or w < 0 for w in self.blend.values()):
            raise ValueError("emotion weights must be finite and >= 0")
        total = sum(self.blend.values())
        if total <= 0:
            raise ValueError("an emotion blend needs at least one positive weight")
        norm = {e: self.blend.get(e, 0.0) / total for e in EMOTIONS}
        object.__setattr__(self, "blend", MappingProxyType(norm))
        if not 0.0 <= self.intensity <= 1.0:
            raise ValueError(f"intensity {self.intensity} outside [0, 1]")

    @classmethod
    def of(cls, emotion: str = "neutral", intensity: float = 0.2) -> EmotionState:
        return cls({emotion: 1.0}, intensity)

    @property
    def dominant(self) -> str:
        return max(EMOTIONS, key=lambda e: self.blend[e])

    def weight(self, emotion: str) -> float:
        return self.blend[emotion]

    def toward(self, target: EmotionState, fraction: float) -> EmotionState:
        """Move `fraction` of the way to `target` (0 = unchanged, 1 = target)."""
        f = _clamp(fraction, 0.0, 1.0)
        blend = {e: self.blend[e] + (target.blend[e] - self.blend[e]) * f for e in EMOTIONS}
        return EmotionState(blend, self.intensity + (target.intensity - self.intensity) * f)

    def as_event(self) -> dict[str, object]:
        """Payload for the client's emotion event (`npc.emotion`)."""
        return {
            "dominant": self.dominant,
            "intensity": round(self.intensity, 3),
            "blend": {e: round(w, 3) for e, w in self.blend.items() if w >= 0.005},
        }


@dataclass(frozen=True, slots=True)
class Temperament:
    """A character's emotional baseline and how fast and how strongly it reacts."""

    baseline: EmotionState = field(default_factory=lambda: EmotionState.of("neutral", 0.2))
    #: seconds for the distance to the baseline to halve
    half_life_s: float = 300.0
    #: multiplies every emotion impulse (0.5: stoic, 1.5: volatile)
    sensitivity: float = 1.0

    def __post_init__(self) -> None:
        if not self.half_life_s > 0:
            raise ValueError("half_life_s must be > 0")
        if not 0.0 <= self.sensitivity <= 4.0:
            raise ValueError("sensitivity must be in [0, 4]")


@dataclass(frozen=True, slots=True)
class Relationship:
    trust: float = 0.0
    affinity: float = 0.0

    def __post_init__(self) -> None:
        for name in ("trust", "affinity"):
            v = getattr(self, name)
            if not -1.0 <= v <= 1.0:
                raise ValueError(f"{name} {v} outside [-1, 1]")

    def changed(self, *, trust: float = 0.0, affinity: float = 0.0) -> Relationship:
        return Relationship(_saturate(self.trust, trust), _saturate(self.affinity, affinity))


def _saturate(x: float, d: float) -> float:
    d = _clamp(d, -1.0, 1.0)
    y = x + d * (1.0 - x) if d >= 0 else x + d * (1.0 + x)
    return _clamp(y, -1.0, 1.0)


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """What an utterance or a game event does to a character's state."""

    #: emotion -> impulse strength in [0, 1]
    emotions: Mapping[str, float] = field(default_factory=dict)
    trust: float = 0.0
    affinity: float = 0.0

    def __post_init__(self) -> None:
        unknown = set(self.emotions) - set(EMOTIONS)
        if unknown:
            raise ValueError(f"unknown emotions {sorted(unknown)}; known: {', '.join(EMOTIONS)}")
        for e, s in self.emotions.items():
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"impulse of {e} is {s}, outside [0, 1]")
        for name in ("trust", "affinity"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} delta outside [-1, 1]")
        object.__setattr__(self, "emotions", MappingProxyType(dict(self.emotions)))

    @property
    def empty(self) -> bool:
        return not any(self.emotions.values()) and self.trust == 0 and self.affinity == 0

    def __add__(self, other: StateUpdate) -> StateUpdate:
        emotions = dict(self.emotions)
        for e, s in other.emotions.items():
            emotions[e] = min(1.0, emotions.get(e, 0.0) + s)
        return StateUpdate(
            emotions,
            _clamp(self.trust + other.trust, -1.0, 1.0),
            _clamp(self.affinity + other.affinity, -1.0, 1.0),
        )


@dataclass(frozen=True, slots=True)
class CharacterState:
    emotion: EmotionState
    relationship: Relationship
    #: epoch seconds of the last stored update
    updated_at: float

    @classmethod
    def initial(cls, temperament: Temperament, now: float) -> CharacterState:
        return cls(temperament.baseline, Relationship(), now)

    def decayed(self, temperament: Temperament, now: float) -> CharacterState:
        """The state at `now`: emotion relaxed toward the baseline."""
        dt = max(0.0, now - self.updated_at)
        remaining = 0.5 ** (dt / temperament.half_life_s)
        emotion = self.emotion.toward(temperament.baseline, 1.0 - remaining)
        return CharacterState(emotion, self.relationship, max(now, self.updated_at))

    def applied(self, update: StateUpdate, temperament: Temperament, now: float) -> CharacterState:
        """Decay to `now`, then apply `update`."""
        state = self.decayed(temperament, now)
        emotion = state.emotion
        impulses = {e: s * temperament.sensitivity for e, s in update.emotions.items() if s > 0}
        strength = min(1.0, sum(impulses.values()))
        if strength > 0:
            target = EmotionState(impulses, 1.0)
            blend = {
                e: (1 - strength) * emotion.blend[e] + strength * target.blend[e] for e in EMOTIONS
            }
            intensity = emotion.intensity + strength * (1.0 - emotion.intensity)
            emotion = EmotionState(blend, _clamp(intensity, 0.0, 1.0))
        relationship = state.relationship.changed(trust=update.trust, affinity=update.affinity)
        return CharacterState(emotion, relationship, state.updated_at)

    def describe(self, character_name: str, player_name: str = "the player") -> str:
        """A short paragraph for the system prompt."""
        e = self.emotion
        level = "slightly" if e.intensity < 0.35 else "quite" if e.intensity < 0.7 else "very"
        ranked = sorted(EMOTIONS, key=lambda k: -e.blend[k])
        mood = f"{level} {_ADJECTIVE[ranked[0]]}"
        second = ranked[1]
        if second != "neutral" and e.blend[second] >= 0.2:
            mood += f", and somewhat {_ADJECTIVE[second]}"
        return (
            f"{character_name} currently feels {mood}. "
            f"Toward {player_name}: {_degree(self.relationship.trust, 'trusts', 'distrusts')}; "
            f"{_degree(self.relationship.affinity, 'likes', 'dislikes')}."
        )


def _degree(x: float, positive: str, negative: str) -> str:
    if abs(x) < 0.15:
        return f"neither {positive.rstrip('s')} nor {negative.rstrip('s')} them yet"
    amount = "a little" if abs(x) < 0.45 else "clearly" if abs(x) < 0.8 else "deeply"
    return f"{amount} {positive if x > 0 else negative} them"


def modulate_voice(voice: VoiceConfig, emotion: EmotionState) -> VoiceConfig:
    """The voice with rate and pitch shifted by the emotion (at most ~15%)."""
    rate = 1.0 + emotion.intensity * sum(w * (_VOICE[e][0] - 1) for e, w in emotion.blend.items())
    pitch = 1.0 + emotion.intensity * sum(w * (_VOICE[e][1] - 1) for e, w in emotion.blend.items())
    return voice.model_copy(
        update={
            "rate": _clamp(voice.rate * rate, 0.26, 4.0),
            "pitch": _clamp(voice.pitch * pitch, 0.26, 4.0),
        }
    )


# --- the player's tone -------------------------------------------------------------

# Each word carries (valence in [-1, 1], emotion it evokes in the character or None).
_LEXICON: dict[str, tuple[float, str | None]] = {}


def _words(valence: float, emotion: str | None, words: str) -> None:
    for w in words.split():
        _LEXICON[w] = (valence, emotion)


_words(0.8, "joy", "thanks thank thankyou grateful appreciate love adore wonderful amazing")
_words(0.6, "joy", "great good nice kind lovely beautiful brilliant excellent friend friends")
_words(0.5, "joy", "glad happy pleased welcome please sorry apologise apologize forgive")
_words(0.6, "joy", "brave wise clever smart helpful generous honest hero")
_words(0.4, "surprise", "wow whoa incredible unbelievable astonishing really")
_words(-0.3, "sadness", "sad dead died lost gone miss mourn sorrow alone grief")
_words(-0.7, "anger", "hate stupid idiot fool useless liar lies pathetic worthless shut")
_words(-0.6, "anger", "ugly coward cheat thief traitor scum rat dumb moron")
_words(-0.8, "fear", "kill murder hurt burn die threaten stab destroy")
_words(-0.5, "disgust", "disgusting gross filthy vile smell stinks revolting")
# game events ("the player gave Mara the silver key", "the bridge collapsed")
_words(0.6, "joy", "gave gift gifted saved rescued helped healed returned found won")
_words(-0.6, "anger", "stole robbed attacked betrayed insulted cheated broke")
_words(-0.5, "fear", "collapsed exploded fire ambush monster dragon invaded")

_NEGATIONS = frozenset(
    "not no never nothing don't dont doesn't doesnt isn't isnt aren't wasn't won't can't cannot n't".split()
)
_INTENSIFIERS = {
    "very": 1.5,
    "so": 1.4,
    "really": 1.3,
    "truly": 1.4,
    "extremely": 1.8,
    "totally": 1.5,
    "absolutely": 1.6,
    "quite": 1.2,
    "bit": 0.6,
    "slightly": 0.5,
}
_TOKEN = re.compile(r"[A-Za-z']+|[!?]")


@dataclass(frozen=True, slots=True)
class Appraisal:
    """The tone of one utterance and the state update it causes."""

    #: -1 hostile .. +1 warm
    valence: float
    #: 0 calm .. 1 shouting
    arousal: float
    update: StateUpdate


def appraise_text(text: str) -> Appraisal:
    """Tone of the player's words toward the character, from a small lexicon.

    A deliberately simple VADER-style scorer: each known word has a valence and the
    emotion it evokes in the listener (praise → joy, insults → anger, threats → fear,
    loss → sadness, filth → disgust). A negation in the three words before flips the
    valence and drops the emotion ("not stupid" is mildly kind, not angering);
    intensifiers ("very", "so") scale the next word. Exclamation marks and CAPITALS
    raise arousal, which scales the impulses. The valence is the sum squashed by
    x/sqrt(x²+4) (as VADER does), so long rants saturate instead of growing without
    bound. Trust moves with warm/hostile valence; affinity moves with it twice as
    much. It runs in microseconds and needs no model; it misses sarcasm and context,
    which the session may replace by passing any `Callable[[str], StateUpdate]`.
    """
    tokens = _TOKEN.findall(text)
    total = 0.0
    impulses: dict[str, float] = {}
    hits = 0
    for i, tok in enumerate(tokens):
        word = tok.lower()
        if word not in _LEXICON:
            continue
        valence, emotion = _LEXICON[word]
        scale = 1.0
        window = [t.lower() for t in tokens[max(0, i - 3) : i]]
        if window and window[-1] in _INTENSIFIERS:
            scale *= _INTENSIFIERS[window[-1]]
        negated = any(w in _NEGATIONS or w.endswith("n't") for w in window)
        if negated:
            valence, emotion = -0.5 * valence, None
        total += valence * scale
        hits += 1
        if emotion is not None:
            impulses[emotion] = impulses.get(emotion, 0.0) + 0.25 * scale
    exclaims = sum(1 for t in tokens if t == "!")
    letters = [t for t in tokens if t.isalpha() and len(t) > 1]
    shouting = bool(letters) and sum(t.isupper() for t in letters) / len(letters) > 0.6
    arousal = _clamp(0.2 * hits + 0.15 * exclaims + (0.4 if shouting else 0.0), 0.0, 1.0)
    valence = total / math.sqrt(total * total + 4.0) if total else 0.0
    gain = 0.6 + 0.8 * arousal
    emotions = {e: _clamp(s * gain, 0.0, 1.0) for e, s in impulses.items()}
    update = StateUpdate(
        emotions,
        trust=_clamp(0.1 * valence, -1.0, 1.0),
        affinity=_clamp(0.2 * valence, -1.0, 1.0),
    )
    return Appraisal(valence, arousal, update)


# --- persistence --------------------------------------------------------------------


class StateStore:
    """Per (character, player) state in the database. Thread-safe; calls are blocking.

    `get` reads the state decayed to now without writing; `apply` decays, applies and
    stores in one transaction, so concurrent updates never lose each other.
    """

    def __init__(self, engine: Engine, *, clock: Clock = time.time) -> None:
        self._sessions = Sessions(engine)
        self._clock = clock

    def get(
        self, character_id: str, player_id: str, temperament: Temperament | None = None
    ) -> CharacterState:
        temperament = temperament or Temperament()
        now = self._clock()
        with self._sessions() as s:
            row = s.get(CharacterStateRow, (character_id, player_id))
            state = _from_row(row) if row else CharacterState.initial(temperament, now)
        return state.decayed(temperament, now)

    def apply(
        self,
        character_id: str,
        player_id: str,
        update: StateUpdate,
        temperament: Temperament | None = None,
    ) -> CharacterState:
        temperament = temperament or Temperament()
        return self.apply_many((character_id,), player_id, update, {character_id: temperament})[
            character_id
        ]

    def apply_many(
        self,
        character_ids: list[str] | tuple[str, ...],
        player_id: str,
        update: StateUpdate,
        temperaments: Mapping[str, Temperament] | None = None,
    ) -> dict[str, CharacterState]:
        """One game event perceived by several characters, in one transaction."""
        temperaments = temperaments or {}
        for attempt in range(3):
            out: dict[str, CharacterState] = {}
            try:
                with self._sessions.begin() as s:
                    now = self._clock()
                    for cid in sorted(set(character_ids)):  # one lock order: no deadlocks
                        temperament = temperaments.get(cid) or Temperament()
                        row = s.get(CharacterStateRow, (cid, player_id), with_for_update=True)
                        state = _from_row(row) if row else CharacterState.initial(temperament, now)
                        out[cid] = state.applied(update, temperament, now)
                        _store(s, row, cid, player_id, out[cid])
                return out
            except IntegrityError:
                # another worker created the same row first (PostgreSQL); read it and redo
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def players(self, character_id: str) -> list[str]:
        with self._sessions() as s:
            q = select(CharacterStateRow.player_id).where(
                CharacterStateRow.character_id == character_id
            )
            return sorted(s.scalars(q))

    def reset(self, character_id: str, player_id: str) -> None:
        with self._sessions.begin() as s:
            row = s.get(CharacterStateRow, (character_id, player_id))
            if row is not None:
                s.delete(row)


def _from_row(row: CharacterStateRow) -> CharacterState:
    return CharacterState(
        EmotionState(dict(row.emotion), _clamp(row.intensity, 0.0, 1.0)),
        Relationship(_clamp(row.trust, -1.0, 1.0), _clamp(row.affinity, -1.0, 1.0)),
        to_epoch(row.updated_at),
    )


def _store(
    s: Session,
    row: CharacterStateRow | None,
    character_id: str,
    player_id: str,
    state: CharacterState,
) -> None:
    values = {
        "emotion": {e: w for e, w in state.emotion.blend.items() if w > 0},
        "intensity": state.emotion.intensity,
        "trust": state.relationship.trust,
        "affinity": state.relationship.affinity,
        "updated_at": to_datetime(state.updated_at),
    }
    if row is None:
        s.add(CharacterStateRow(character_id=character_id, player_id=player_id, **values))
    else:
        for k, v in values.items():
            setattr(row, k, v)
