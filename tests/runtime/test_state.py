"""Emotion, relationship and tone: pure rules, then persistence on a real database."""

from __future__ import annotations

import math
import threading

import pytest

from personae.daemon.characters import VoiceConfig
from personae.daemon.runtime.state import (
    EMOTIONS,
    CharacterState,
    EmotionState,
    Relationship,
    StateStore,
    StateUpdate,
    Temperament,
    appraise_text,
    modulate_voice,
)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


CALM = Temperament(baseline=EmotionState.of("neutral", 0.2), half_life_s=60.0)


def test_blend_is_normalised_and_validated() -> None:
    e = EmotionState({"joy": 3.0, "anger": 1.0}, 0.5)
    assert math.isclose(sum(e.blend.values()), 1.0)
    assert e.dominant == "joy" and math.isclose(e.weight("anger"), 0.25)
    assert set(e.blend) == set(EMOTIONS)
    with pytest.raises(ValueError, match="unknown emotions"):
        EmotionState({"smug": 1.0})
    with pytest.raises(ValueError, match="intensity"):
        EmotionState.of("joy", 1.5)
    with pytest.raises(ValueError):
        StateUpdate({"joy": 2.0})


def test_emotion_decays_toward_the_baseline_with_the_half_life() -> None:
    start = CharacterState(EmotionState.of("anger", 1.0), Relationship(), 0.0)
    half = start.decayed(CALM, 60.0)
    assert math.isclose(half.emotion.weight("anger"), 0.5)
    assert math.isclose(half.emotion.weight("neutral"), 0.5)
    assert math.isclose(half.emotion.intensity, 0.6)  # halfway from 1.0 to 0.2
    later = start.decayed(CALM, 600.0)
    assert later.emotion.dominant == "neutral"
    assert later.emotion.weight("anger") < 0.001
    assert start.decayed(CALM, -5.0).emotion == start.emotion  # clock going back: no-op


def test_update_pushes_the_blend_and_raises_intensity() -> None:
    s = CharacterState.initial(CALM, 0.0)
    s2 = s.applied(StateUpdate({"joy": 0.5}, trust=0.2, affinity=0.4), CALM, 0.0)
    assert s2.emotion.dominant in ("joy", "neutral")
    assert math.isclose(s2.emotion.weight("joy"), 0.5)
    assert math.isclose(s2.emotion.intensity, 0.2 + 0.5 * 0.8)
    assert s2.relationship == Relationship(0.2, 0.4)
    stoic = Temperament(sensitivity=0.0)
    assert s.applied(StateUpdate({"anger": 1.0}), stoic, 0.0).emotion == s.emotion


def test_relationship_saturates_and_is_order_independent() -> None:
    r = Relationship()
    for _ in range(200):
        r = r.changed(trust=0.1, affinity=-0.1)
    assert 0.999 < r.trust <= 1.0 and -1.0 <= r.affinity < -0.999
    a = Relationship(0.5, 0).changed(trust=-0.2).changed(trust=-0.3)
    b = Relationship(0.5, 0).changed(trust=-0.3).changed(trust=-0.2)
    assert math.isclose(a.trust, b.trust)


@pytest.mark.parametrize(
    ("text", "sign", "emotion"),
    [
        ("Thank you so much, you're a wonderful friend!", 1, "joy"),
        ("You stupid useless liar.", -1, "anger"),
        ("I will kill you and burn this village.", -1, "fear"),
        ("My brother died and I miss him.", -1, "sadness"),
        ("This tavern is filthy and disgusting.", -1, "disgust"),
    ],
)
def test_tone_of_the_players_words(text: str, sign: int, emotion: str) -> None:
    a = appraise_text(text)
    assert a.valence * sign > 0.2
    assert max(a.update.emotions, key=a.update.emotions.get) == emotion
    assert (a.update.affinity > 0) == (sign > 0)


def test_negation_neutral_text_and_shouting() -> None:
    a = appraise_text("you are not stupid")
    assert a.valence > 0 and "anger" not in a.update.emotions
    assert appraise_text("Where is the mill?").update.empty
    calm = appraise_text("you idiot")
    loud = appraise_text("YOU IDIOT!!!")
    assert loud.arousal > calm.arousal
    assert loud.update.emotions["anger"] > calm.update.emotions["anger"]


def test_emotion_shows_in_the_voice_and_the_event() -> None:
    voice = VoiceConfig(rate=1.0, pitch=1.0)
    sad = modulate_voice(voice, EmotionState.of("sadness", 1.0))
    angry = modulate_voice(voice, EmotionState.of("anger", 1.0))
    calm = modulate_voice(voice, EmotionState.of("anger", 0.0))
    assert sad.rate < 1.0 < angry.rate and calm == voice
    assert 0.8 < sad.rate and angry.rate < 1.2
    ev = EmotionState({"joy": 0.7, "surprise": 0.3}, 0.6).as_event()
    assert ev == {"dominant": "joy", "intensity": 0.6, "blend": {"joy": 0.7, "surprise": 0.3}}


def test_describe_for_the_prompt() -> None:
    s = CharacterState(EmotionState({"anger": 0.7, "fear": 0.3}, 0.9), Relationship(-0.6, 0.9), 0)
    text = s.describe("Mara")
    assert text.startswith("Mara currently feels very angry, and somewhat afraid.")
    assert "clearly distrusts them" in text and "deeply likes them" in text


# --- persistence ---------------------------------------------------------------------


def test_store_persists_and_decays_on_read(engine) -> None:
    clock = Clock()
    store = StateStore(engine, clock=clock)
    fresh = store.get("mara", "p1", CALM)
    assert fresh.emotion == CALM.baseline and fresh.relationship == Relationship()
    assert store.players("mara") == []  # reading writes nothing

    s = store.apply("mara", "p1", StateUpdate({"anger": 1.0}, trust=-0.5), CALM)
    assert s.emotion.dominant == "anger" and s.relationship.trust == -0.5
    assert StateStore(engine, clock=clock).get("mara", "p1", CALM) == s

    clock.t += 60
    half = store.get("mara", "p1", CALM)
    assert math.isclose(half.emotion.weight("anger"), 0.5, rel_tol=1e-6)
    assert half.relationship.trust == -0.5  # relationships do not decay
    assert store.get("mara", "p2", CALM).relationship == Relationship()  # per player

    store.reset("mara", "p1")
    assert store.get("mara", "p1", CALM).relationship == Relationship()


def test_a_game_event_reaches_every_listener_at_once(engine) -> None:
    store = StateStore(engine, clock=Clock())
    out = store.apply_many(
        ["mara", "tobin"],
        "p1",
        StateUpdate({"surprise": 0.8}, affinity=0.3),
        {"tobin": Temperament(sensitivity=0.5)},
    )
    assert out["mara"].emotion.weight("surprise") > out["tobin"].emotion.weight("surprise") > 0
    assert store.players("tobin") == ["p1"]


def test_concurrent_updates_are_not_lost(engine) -> None:
    store = StateStore(engine, clock=Clock())
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                store.apply("mara", "p1", StateUpdate(trust=0.05), CALM)
        except BaseException as exc:  # re-raised below in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    # saturating updates commute: 40 of them give exactly 1 - 0.95**40
    assert math.isclose(store.get("mara", "p1").relationship.trust, 1 - 0.95**40)
