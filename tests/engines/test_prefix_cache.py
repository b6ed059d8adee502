"""PrefixCache bookkeeping on small tensors (the engine's use is tested with the real
model in test_llm_transformers.py)."""

from __future__ import annotations

import torch

from personae.daemon.engines.prefix_cache import PrefixCache


def kv_for(tokens: list[int], layers: int = 2):
    """Fake KV whose values record the token at each position."""
    t = torch.tensor(tokens, dtype=torch.float32).view(1, 1, -1, 1)
    return tuple((t.clone(), -t.clone()) for _ in range(layers))


def test_longest_shared_prefix_of_the_same_adapter_is_reused():
    cache = PrefixCache(max_tokens=1000, min_tokens=3)
    cache.store("a", [1, 2, 3, 4, 5, 6], kv_for([1, 2, 3, 4, 5, 6]))
    cache.store("a", [1, 2, 3, 9, 9, 9], kv_for([1, 2, 3, 9, 9, 9]))
    n, kv = cache.lookup("a", [1, 2, 3, 4, 5, 7, 8])
    assert n == 5
    assert kv is not None and kv[0][0].flatten().tolist() == [1, 2, 3, 4, 5]
    assert cache.lookup("b", [1, 2, 3, 4, 5, 7, 8]) == (0, None)  # other adapter: never


def test_the_last_prompt_token_is_always_left_to_prefill():
    cache = PrefixCache(max_tokens=1000, min_tokens=2)
    cache.store("a", [1, 2, 3, 4, 5], kv_for([1, 2, 3, 4, 5]))
    n, kv = cache.lookup("a", [1, 2, 3, 4, 5])
    assert n == 4 and kv[1][1].shape[2] == 4


def test_short_prefixes_are_a_miss_and_counted():
    cache = PrefixCache(max_tokens=1000, min_tokens=4)
    cache.store("a", [1, 2, 3, 4, 5, 6], kv_for([1, 2, 3, 4, 5, 6]))
    assert cache.lookup("a", [1, 2, 3, 0, 0, 0, 0]) == (0, None)
    assert cache.lookup("a", [1, 2, 3, 4, 5, 0])[0] == 5
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.reused_tokens) == (1, 1, 5)


def test_stored_tensors_are_not_changed_by_a_reader():
    cache = PrefixCache(max_tokens=1000, min_tokens=2)
    cache.store("a", [1, 2, 3, 4], kv_for([1, 2, 3, 4]))
    _, kv = cache.lookup("a", [1, 2, 3, 4, 5])
    # what DynamicLayer.update does with a reused prefix
    grown = torch.cat([kv[0][0], torch.full((1, 1, 1, 1), 99.0)], dim=-2)
    assert grown.flatten().tolist() == [1, 2, 3, 4, 99]
    _, again = cache.lookup("a", [1, 2, 3, 4, 6])
    assert again[0][0].flatten().tolist() == [1, 2, 3, 4]


def test_a_longer_prompt_supersedes_its_prefix_and_a_covered_one_is_not_stored():
    cache = PrefixCache(max_tokens=1000, min_tokens=2)
    cache.store("a", [1, 2, 3], kv_for([1, 2, 3]))
    cache.store("a", [1, 2, 3, 4, 5], kv_for([1, 2, 3, 4, 5]))
    assert cache.stats().entries == 1 and cache.stats().tokens == 5
    cache.store("a", [1, 2, 3, 4], kv_for([1, 2, 3, 4]))
    assert cache.stats().entries == 1
    cache.store("b", [1, 2, 3], kv_for([1, 2, 3]))  # same tokens, other adapter
    assert cache.stats().entries == 2


def test_token_budget_evicts_least_recently_used():
    cache = PrefixCache(max_tokens=10, min_tokens=2)
    cache.store("a", [1, 1, 1, 1], kv_for([1, 1, 1, 1]))
    cache.store("a", [2, 2, 2, 2], kv_for([2, 2, 2, 2]))
    cache.lookup("a", [1, 1, 1, 1, 0])  # touch the first: the second is now oldest
    cache.store("a", [3, 3, 3, 3], kv_for([3, 3, 3, 3]))
    assert cache.stats().tokens <= 10
    assert cache.lookup("a", [1, 1, 1, 1, 0])[0] == 4
    assert cache.lookup("a", [2, 2, 2, 2, 0])[0] == 0
    assert cache.lookup("a", [3, 3, 3, 3, 0])[0] == 4
    cache.store("a", list(range(11)), kv_for(list(range(11))))  # over the whole budget
    assert cache.lookup("a", [*range(11), 0])[0] == 0


def test_dropping_an_adapter_forgets_only_its_entries():
    cache = PrefixCache(max_tokens=100, min_tokens=2)
    cache.store("a", [1, 2, 3, 4], kv_for([1, 2, 3, 4]))
    cache.store("b", [1, 2, 3, 4], kv_for([1, 2, 3, 4]))
    cache.drop_adapter("a")
    assert cache.lookup("a", [1, 2, 3, 4, 5])[0] == 0
    assert cache.lookup("b", [1, 2, 3, 4, 5])[0] == 4
    assert cache.stats().tokens == 4


def test_a_zero_budget_turns_it_off():
    cache = PrefixCache(max_tokens=0)
    cache.store("a", list(range(50)), kv_for(list(range(50))))
    assert cache.lookup("a", list(range(60))) == (0, None)
    assert cache.stats().entries == 0
