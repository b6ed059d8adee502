"""The adapter cache: on disk (the store), resident in the LLM, pinned while speaking.

Characters name adapters by (name, version); the engine knows them as "name@version",
so two versions of one adapter can be resident at once and a reply that started on the
old version finishes on it while new replies use the new one. Resident adapters beyond
`capacity` are evicted least recently used first, never while a reply wears them.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from personae.daemon.characters import AdapterRef, Character
from personae.daemon.engines.base import LLMEngine
from personae.daemon.errors import ConfigError


def engine_name(ref: AdapterRef) -> str:
    return f"{ref.name}@{ref.version}"


@dataclass(frozen=True, slots=True)
class CacheStats:
    resident: int
    capacity: int
    pinned: int
    hits: int
    misses: int
    loads: int
    evictions: int

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class AdapterCache:
    def __init__(
        self,
        llm: LLMEngine,
        *,
        capacity: int,
        resolve: Callable[[Character], Path],
        on_load: Callable[[str], None] | None = None,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ConfigError("adapter cache capacity must be at least 1")
        self._llm = llm
        self._capacity = capacity
        self._resolve = resolve
        self._on_load = on_load
        self._on_lookup = on_lookup
        self._resident: OrderedDict[str, Path] = OrderedDict()  # LRU order, oldest first
        self._pins: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._hits = self._misses = self._loads = self._evictions = 0

    def acquire(self, character: Character) -> str | None:
        """The engine's name for the character's adapter, loaded and pinned; None if it has none.

        Blocking (a load reads the adapter from disk): run it in a worker thread. Every
        acquire that returns a name must be matched by one `release`.
        """
        ref = character.adapter
        if ref is None:
            return None
        if not self._llm.supports_adapters:
            raise ConfigError(
                f"character {character.id!r} has an adapter but the "
                f"{self._llm.name} engine cannot load adapters"
            )
        name = engine_name(ref)
        with self._lock:
            hit = name in self._resident
            if self._on_lookup is not None:
                self._on_lookup(hit)
            if hit:
                self._hits += 1
                self._resident.move_to_end(name)
                self._pins[name] += 1
                return name
            self._misses += 1
            path = self._resolve(character)
            self._llm.load_adapter(name, str(path))
            self._loads += 1
            self._resident[name] = path
            self._pins[name] += 1
            self._evict()
        if self._on_load is not None:
            self._on_load(name)
        return name

    def release(self, name: str | None) -> None:
        """Unpin. Never blocks: eviction waits for the next `acquire`, in a worker thread."""
        if name is None:
            return
        with self._lock:
            if self._pins[name] <= 0:
                raise RuntimeError(f"adapter {name!r} released more often than acquired")
            self._pins[name] -= 1

    def preload(self, character: Character) -> None:
        """Make the character's adapter resident now (start-up, deployments)."""
        self.release(self.acquire(character))
        with self._lock:
            self._evict()

    def _evict(self) -> None:
        while len(self._resident) > self._capacity:
            victim = next((n for n in self._resident if self._pins[n] == 0), None)
            if victim is None:
                return  # everything resident is speaking: over capacity until one ends
            del self._resident[victim]
            self._llm.unload_adapter(victim)
            self._evictions += 1

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                resident=len(self._resident),
                capacity=self._capacity,
                pinned=sum(1 for n in self._resident if self._pins[n] > 0),
                hits=self._hits,
                misses=self._misses,
                loads=self._loads,
                evictions=self._evictions,
            )

    def resident(self) -> list[str]:
        with self._lock:
            return list(self._resident)
