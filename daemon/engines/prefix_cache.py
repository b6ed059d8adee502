"""KV states of recent prompts, reused by later prompts that begin the same way.

Every reply of a character starts with the same tokens: its system prompt (and, turn
after turn of one conversation, much of the same history). Prefilling them costs most
of the time to the first token on a CPU, so the engine keeps the keys and values of
recent prompts and prefills only what differs. Entries are per adapter: a LoRA on
k_proj or v_proj changes the cached values, so a prefix computed with one adapter is
never reused with another, and an adapter's entries are dropped when its weights change.

Stored tensors are never written to: the decode loop's cache concatenates new keys
onto them (`DynamicLayer.update` builds new tensors), so a reused entry can serve any
number of concurrent replies. Memory is bounded by a token budget, least recently used
first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: keys and values per layer, each (1, kv_heads, tokens, head_dim)
KV = tuple[tuple[torch.Tensor, torch.Tensor], ...]


@dataclass(frozen=True, slots=True)
class PrefixStats:
    entries: int
    tokens: int
    capacity_tokens: int
    hits: int
    misses: int
    reused_tokens: int


@dataclass(slots=True)
class _Entry:
    adapter: str
    tokens: torch.Tensor  # int64, 1-D
    kv: KV


class PrefixCache:
    def __init__(self, *, max_tokens: int, min_tokens: int = 16) -> None:
        self.max_tokens = max_tokens
        #: shorter shared prefixes are not worth rebuilding a cache for
        self.min_tokens = min_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self._tokens = 0
        self._hits = self._misses = self._reused = 0
        self._lock = threading.Lock()

    def lookup(self, adapter: str, prompt: Sequence[int]) -> tuple[int, KV | None]:
        """(tokens reused, their KV) for the longest cached prefix of `prompt`.

        At least the prompt's last token is always left to prefill: its logits are the
        first token's. (0, None) when nothing long enough is cached.
        """
        if self.max_tokens <= 0 or len(prompt) <= self.min_tokens:
            return 0, None
        ids = torch.tensor(prompt, dtype=torch.long)
        best, best_len = None, 0
        with self._lock:
            for key, entry in self._entries.items():
                if entry.adapter != adapter:
                    continue
                n = _common_prefix(entry.tokens, ids)
                if n > best_len:
                    best, best_len = key, n
            best_len = min(best_len, len(prompt) - 1)
            if best is None or best_len < self.min_tokens:
                self._misses += 1
                return 0, None
            entry = self._entries[best]
            self._entries.move_to_end(best)
            self._hits += 1
            self._reused += best_len
        kv = tuple((k[:, :, :best_len], v[:, :, :best_len]) for k, v in entry.kv)
        return best_len, kv

    def store(self, adapter: str, prompt: Sequence[int], kv: KV) -> None:
        """Keep `prompt`'s KV (exactly len(prompt) positions) for later prompts."""
        n = len(prompt)
        if self.max_tokens <= 0 or n > self.max_tokens or n <= self.min_tokens:
            return
        ids = torch.tensor(prompt, dtype=torch.long)
        with self._lock:
            for key, entry in list(self._entries.items()):
                if entry.adapter != adapter:
                    continue
                shared = _common_prefix(entry.tokens, ids)
                if shared == len(entry.tokens):  # the new prompt extends it: supersede
                    self._drop(key)
                elif shared == n:  # already covered by a longer entry
                    self._entries.move_to_end(key)
                    return
            self._entries[self._next] = _Entry(adapter, ids, kv)
            self._next += 1
            self._tokens += n
            while self._tokens > self.max_tokens:
                self._drop(next(iter(self._entries)))

    def drop_adapter(self, adapter: str) -> None:
        """Forget everything computed with `adapter` (its weights changed or it left)."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.adapter == adapter]:
                self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._tokens = 0

    def stats(self) -> PrefixStats:
        with self._lock:
            return PrefixStats(
                entries=len(self._entries),
                tokens=self._tokens,
                capacity_tokens=self.max_tokens,
                hits=self._hits,
                misses=self._misses,
                reused_tokens=self._reused,
            )

    def _drop(self, key: int) -> None:
        self._tokens -= len(self._entries.pop(key).tokens)


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0]) if len(differ) else n


def kv_of(past: Any) -> KV:
    """The keys and values of a transformers cache, as the prefix cache keeps them."""
    return tuple((layer.keys, layer.values) for layer in past.layers)


def as_cache(kv: KV | None, config: Any) -> Any:
    """A transformers cache that continues from `kv` (None: a fresh start)."""
    if kv is None:
        return None
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=kv, config=config)
