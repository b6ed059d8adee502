"""Story memory: storing, similarity + recency retrieval, the token budget."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import pytest
from sqlalchemy import text

from personae.daemon.runtime.memory import MemoryStore, RecallWeights, format_memories
from personae.daemon.runtime.turns import TurnLog

DIM = 64


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A deterministic stand-in for the sentence embedder: hashed word counts."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            if len(w) > 2:
                out[i, int(hashlib.sha256(w.encode()).hexdigest(), 16) % DIM] += 1.0
    return out


def words(s: str) -> int:
    return len(s.split())


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memories(engine, clock: Clock) -> MemoryStore:
    return MemoryStore(engine, embed=bag_of_words, embed_model="bow-64", clock=clock)


def test_relevant_memories_come_first_within_the_budget(memories: MemoryStore, clock) -> None:
    memories.remember("mara", "The player gave Mara the silver key", player_id="p1", importance=0.9)
    clock.t += 10
    memories.remember("mara", "The player asked about the weather", player_id="p1", importance=0.1)
    clock.t += 10
    memories.remember("mara", "The bridge over the river collapsed", importance=0.8)
    clock.t += 10
    memories.remember("mara", "Tobin owes the player money", player_id="p2")

    got = memories.recall(
        "mara", "p1", "where is the silver key?", budget_tokens=100, count_tokens=words
    )
    texts = [r.memory.text for r in got]
    assert "Tobin owes the player money" not in texts  # another player's memory
    assert "The bridge over the river collapsed" in texts  # shared memories reach everyone
    assert [r.memory.created_at for r in got] == sorted(r.memory.created_at for r in got)
    best = max(got, key=lambda r: r.score)
    assert best.memory.text == "The player gave Mara the silver key"

    tight = memories.recall("mara", "p1", "silver key", budget_tokens=9, count_tokens=words)
    assert [r.memory.text for r in tight] == ["The player gave Mara the silver key"]
    assert sum(r.tokens for r in tight) <= 9
    assert memories.recall("mara", "p1", "key", budget_tokens=0, count_tokens=words) == []


def test_recency_breaks_ties_between_equally_relevant_memories(memories, clock) -> None:
    memories.remember("mara", "a wolf was seen near the mill", importance=0.5)
    clock.t += 7 * 86_400
    memories.remember("mara", "a wolf was seen near the well", importance=0.5)
    got = memories.recall("mara", None, "wolf", budget_tokens=8, count_tokens=words)
    assert [r.memory.text for r in got] == ["a wolf was seen near the well"]
    assert got[0].recency == 1.0


def test_rows_without_or_with_stale_embeddings_are_embedded_on_recall(engine, clock) -> None:
    plain = MemoryStore(engine, clock=clock)  # no embedder: stores no vector
    plain.remember("mara", "the silver key opens the crypt", player_id="p1")
    plain.remember("mara", "bread costs two coins", player_id="p1")
    # without an embedder, recall ranks by recency and importance only
    assert len(plain.recall("mara", "p1", "key", budget_tokens=50, count_tokens=words)) == 2

    store = MemoryStore(engine, embed=bag_of_words, embed_model="bow-64", clock=clock)
    got = store.recall(
        "mara",
        "p1",
        "silver key crypt",
        budget_tokens=50,
        count_tokens=words,
        weights=RecallWeights(relevance=1, recency=0, importance=0),
    )
    assert max(got, key=lambda r: r.score).memory.text == "the silver key opens the crypt"
    with engine.connect() as conn:
        models = conn.execute(text("SELECT DISTINCT embedding_model FROM memories")).scalars()
        assert list(models) == ["bow-64"]


def test_one_event_for_several_listeners_and_forgetting(memories: MemoryStore) -> None:
    made = memories.remember_many(
        ["mara", "tobin"], "  the bridge collapsed  ", kind="event", importance=1.0
    )
    assert [m.character_id for m in made] == ["mara", "tobin"] and made[
        0
    ].text == "the bridge collapsed"
    memories.remember("mara", "p1 lied about the key", player_id="p1", kind="fact")
    assert len(memories.recent("mara", "p1")) == 2
    assert memories.forget("mara", player_id="p1") == 1
    assert [m.text for m in memories.recent("mara", "p1")] == ["the bridge collapsed"]
    assert [m.text for m in memories.recent("tobin", None)] == ["the bridge collapsed"]


def test_bad_memories_are_refused(memories: MemoryStore) -> None:
    with pytest.raises(ValueError, match="needs text"):
        memories.remember("mara", "   ")
    with pytest.raises(ValueError, match="unknown memory kind"):
        memories.remember("mara", "x", kind="dream")
    with pytest.raises(ValueError, match="importance"):
        memories.remember("mara", "x", importance=2)


def test_format_memories() -> None:
    assert format_memories([]) == ""


def test_turn_log_keeps_order_version_and_variant(engine, clock) -> None:
    log = TurnLog(engine, clock=clock)
    log.append(session_id="s1", character_id="mara", player_id="p1", role="player", text="hi")
    log.append(
        session_id="s1",
        character_id="mara",
        player_id="p1",
        role="character",
        text="Hello.",
        version="v2",
        variant="b",
        latency_ms=420.0,
    )
    log.append(session_id="s2", character_id="mara", player_id="p2", role="player", text="yo")
    recent = log.recent("mara", "p1")
    assert [(t.role, t.text, t.version, t.variant) for t in recent] == [
        ("player", "hi", None, None),
        ("character", "Hello.", "v2", "b"),
    ]
    assert [t.text for t in log.recent("mara", "p1", limit=1)] == ["Hello."]
    assert len(log.for_session("s1")) == 2
    with pytest.raises(ValueError, match="role"):
        log.append(session_id="s1", character_id="mara", player_id="p1", role="narrator", text="x")


def test_an_old_important_memory_outlives_recent_small_talk(memories: MemoryStore, clock) -> None:
    memories.remember("mara", "the player saved Mara's brother", player_id="p1", importance=1.0)
    for i in range(12):
        clock.t += 60
        memories.remember("mara", f"small talk number {i}", player_id="p1", importance=0.05)
    got = memories.recall(
        "mara", "p1", "brother", budget_tokens=100, count_tokens=words, candidates=6
    )
    assert "the player saved Mara's brother" in [r.memory.text for r in got]


def test_prune_keeps_the_newest_and_the_important(memories: MemoryStore, clock) -> None:
    memories.remember("mara", "the player saved her brother", player_id="p1", importance=0.9)
    for i in range(10):
        clock.t += 1
        memories.remember("mara", f"chat {i}", player_id="p1", importance=0.1)
    memories.remember("mara", "the bridge collapsed")  # shared: another owner
    assert memories.prune("mara", player_id="p1", keep=3) == 7
    assert [m.text for m in memories.recent("mara", "p1")] == [
        "the bridge collapsed",
        "chat 9",
        "chat 8",
        "chat 7",
        "the player saved her brother",
    ]
    assert memories.prune("mara", player_id="p1", keep=3) == 0
