"""The per-turn facade: what the session calls, end to end on a real database."""

from __future__ import annotations

import pytest

from personae.daemon.characters import AdapterRef, Character, LoreEntry, VoiceConfig
from personae.daemon.errors import ClientError
from personae.daemon.runtime.context import CharacterRuntime, event_update
from personae.daemon.runtime.state import StateUpdate


def words(s: str) -> int:
    return len(s.split())


class Clock:
    t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


MARA = Character(
    id="mara",
    name="Mara",
    description="The blacksmith.",
    voice=VoiceConfig(rate=1.0),
    lore=(LoreEntry(keys=("silver key",), content="The silver key opens the old crypt."),),
)


def test_a_conversation_shapes_state_memory_prompt_and_voice(engine) -> None:
    clock = Clock()
    rt = CharacterRuntime(engine, count_tokens=words, clock=clock)
    before = rt.context_for(MARA, "p1", ["hello"])
    assert before.context == (
        "Mara currently feels slightly calm. Toward the player: neither trust nor distrust "
        "them yet; neither like nor dislike them yet.",
    )
    for line in ("You stupid liar!", "Useless coward.", "Give me the silver key, you idiot!"):
        states = rt.player_said(["mara", "tobin"], "p1", line, session_id="s1")
    assert states["mara"].emotion.dominant == "anger" and states["mara"].relationship.affinity < 0
    rt.character_said("mara", "p1", "Get out of my forge.", session_id="s1", version="v3")

    recent = ["Give me the silver key, you idiot!", "Get out of my forge."]
    ctx = rt.context_for(MARA, "p1", recent)
    text = "\n".join(ctx.context)
    assert ctx.context[0] == "The silver key opens the old crypt."  # lore, before_char
    assert "Mara currently feels" in text and "angry" in text and "dislikes them" in text
    assert 'The player said: "You stupid liar!"' in text  # remembered, recalled, quoted
    assert "and somewhat" not in text.split("\n")[1]  # neutral is not a second feeling
    assert ctx.voice.rate > 1.0 and ctx.emotion_event["dominant"] == "anger"
    assert ctx.emotion_event["character"] == "mara"
    assert [(t.role, t.version) for t in rt.turns.recent("mara", "p1")] == [
        *[("player", None)] * 3,
        ("character", "v3"),
    ]
    assert [t.role for t in rt.turns.recent("tobin", "p1")] == ["player"] * 3

    clock.t += 3600  # an hour later she has calmed down, but remembers
    later = rt.context_for(MARA, "p1", ["hello again"])
    assert later.state.emotion.dominant == "neutral"
    assert later.state.relationship == states["mara"].relationship
    assert later.memories and later.lore == ()


def test_game_events_reach_only_those_who_perceive_them(engine) -> None:
    rt = CharacterRuntime(engine, count_tokens=words, clock=Clock())
    rt.game_event(
        ["mara"],
        "p1",
        "gift",
        "the player gave Mara the silver key",
        {"emotions": {"joy": 0.7}, "affinity": 0.4, "importance": 0.9},
    )
    rt.game_event(["mara", "tobin"], "p1", "the bridge collapsed")
    mara = rt.state.get("mara", "p1")
    assert mara.relationship.affinity == pytest.approx(0.4)
    assert rt.state.get("tobin", "p1").emotion.weight("fear") > 0  # from the words
    assert [m.text for m in rt.memory.recent("mara", "p1")] == [
        "the bridge collapsed",
        "gift: the player gave Mara the silver key",
    ]
    assert [m.text for m in rt.memory.recent("tobin", "p1")] == ["the bridge collapsed"]
    assert rt.memory.recent("mara", "p1")[1].importance == 0.9


def test_event_data_is_validated() -> None:
    assert event_update({}) == (StateUpdate(), 0.6)
    assert event_update({"trust": -0.5})[0].trust == -0.5
    for bad in (
        {"emotions": {"smug": 1}},
        {"importance": 3},
        {"trust": "lots"},
        {"emotions": ["joy"]},
    ):
        with pytest.raises(ClientError) as err:
            event_update(bad)
        assert err.value.code == "invalid_event"


def test_an_adapter_gets_the_lore_it_was_trained_with(engine) -> None:
    rt = CharacterRuntime(engine, count_tokens=words, clock=Clock(), lore_budget_tokens=200)
    key = ["the silver key"]
    untold = MARA.model_copy(update={"adapter": AdapterRef(name="mara", version="v1")})
    assert len(rt.context_for(untold, "p1", key).lore) == 1  # the daemon's budget
    without = AdapterRef(name="mara", version="v2", lore_budget_tokens=0)
    assert rt.context_for(MARA.model_copy(update={"adapter": without}), "p1", key).lore == ()
    tight = AdapterRef(name="mara", version="v3", lore_budget_tokens=3)  # under the entry's 6
    assert rt.context_for(MARA.model_copy(update={"adapter": tight}), "p1", key).lore == ()
    roomy = AdapterRef(name="mara", version="v4", lore_budget_tokens=50)
    assert len(rt.context_for(MARA.model_copy(update={"adapter": roomy}), "p1", key).lore) == 1


def test_a_new_version_with_other_lore_is_used_at_once(engine) -> None:
    from personae.daemon.runtime.lore import Lorebook
    from personae.daemon.runtime.lore import LoreEntry as BookEntry

    rt = CharacterRuntime(engine, count_tokens=words, clock=Clock())
    assert [e.content for e in rt.context_for(MARA, "p1", ["the silver key"]).lore] == [
        "The silver key opens the old crypt."
    ]
    v2 = MARA.model_copy(
        update={"lore": (LoreEntry(keys=("silver key",), content="The key is a fake."),)}
    )
    assert [e.content for e in rt.context_for(v2, "p1", ["the silver key"]).lore] == [
        "The key is a fake."
    ]
    rt.set_lorebook(
        "mara", Lorebook(entries=(BookEntry(keys=(), content="Always.", constant=True),))
    )
    assert [e.content for e in rt.context_for(v2, "p1", ["hi"]).lore] == ["Always."]
    rt.set_lorebook("mara", None)
    assert rt.context_for(v2, "p1", ["hi"]).lore == ()
