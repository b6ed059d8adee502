"""The adapter cache: LRU eviction at capacity, pins while speaking, statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.daemon.adapters import AdapterCache
from personae.daemon.characters import AdapterRef, default_cast_dir, load_cast
from personae.daemon.errors import ConfigError
from personae.daemon.testing import FakeLLM


@pytest.fixture
def characters():
    bram = load_cast([default_cast_dir()])["bram"]
    return [
        bram.model_copy(update={"id": f"c{i}", "adapter": AdapterRef(name=f"a{i}", version="v1")})
        for i in range(4)
    ]


def make(capacity: int = 2) -> tuple[AdapterCache, FakeLLM]:
    llm = FakeLLM()
    return AdapterCache(llm, capacity=capacity, resolve=lambda ch: Path("/store") / ch.id), llm


def test_least_recently_used_is_evicted(characters) -> None:
    cache, llm = make(capacity=2)
    for ch in characters[:2]:
        cache.preload(ch)
    cache.release(cache.acquire(characters[0]))  # c0 is now the most recent
    cache.preload(characters[2])
    assert set(llm.adapters) == {"a0@v1", "a2@v1"}
    stats = cache.stats()
    assert (stats.loads, stats.hits, stats.misses, stats.evictions) == (3, 1, 3, 1)


def test_a_speaking_character_is_never_evicted(characters) -> None:
    cache, llm = make(capacity=1)
    speaking = cache.acquire(characters[0])
    other = cache.acquire(characters[1])  # over capacity while both speak
    assert set(llm.adapters) == {"a0@v1", "a1@v1"} and cache.stats().pinned == 2
    cache.release(other)
    cache.preload(characters[2])  # evicts a1 (unpinned), keeps the speaking a0
    assert "a0@v1" in llm.adapters and "a1@v1" not in llm.adapters
    cache.release(speaking)
    with pytest.raises(RuntimeError):
        cache.release(speaking)


def test_characters_without_adapter_need_nothing(characters) -> None:
    cache, llm = make()
    plain = characters[0].model_copy(update={"adapter": None})
    assert cache.acquire(plain) is None
    cache.release(None)
    assert llm.adapters == {}
    with pytest.raises(ConfigError):
        AdapterCache(llm, capacity=0, resolve=lambda ch: Path("."))
