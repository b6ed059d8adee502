"""LLM on transformers + PEFT: one shared base model, each character's LoRA resident by name.

Decoding is a manual loop with a KV cache: one forward per token under the model
lock, so requests interleave token by token, cancellation lands within one token, and
sampling uses a per-request RNG (sampling.py). Each forward wears the adapter its
request names, inside the lock, so concurrent requests cannot wear each other's
adapter. The model, its tokenizer, its lock and the resident adapters are held by a
`TransformersModel` (transformers_model.py), shared in kind with the batched engine.
Prompt prefixes already computed with the same adapter are reused (prefix_cache.py),
and can be computed ahead of a reply (`prime`), in pieces that give way to replies.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.engines.prefix_cache import PrefixCache, as_cache, kv_of
from personae.daemon.engines.sampling import ReplyText, Sampler
from personae.daemon.engines.transformers_engine import ModelHoldingLLM
from personae.daemon.engines.transformers_model import (
    BASE_ADAPTER,
    TransformersModel,
    resolve_model_dir,
)
from personae.daemon.errors import EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

#: priming prefills this many tokens per forward, and stops between two as soon as a
#: reply is in flight: it uses idle time only, so it never holds the model for a whole
#: prompt (~0.3-3 s here) while other players' replies wait; what it has computed by
#: then is kept. ~0.15 s a piece on one core of the 2-core Xeon in docs/benchmarks.md.
PRIME_CHUNK_TOKENS = 32


class TransformersLLM(ModelHoldingLLM):
    name = "transformers"
    supports_adapters = True

    def __init__(
        self,
        *,
        model_dir: str | Path,
        threads: int = 0,
        busy_timeout_s: float = 60.0,
        prefix_cache_tokens: int = 4096,
        device: str = "cpu",
        dtype: str = "auto",
    ) -> None:
        self.model = TransformersModel(
            model_dir=model_dir,
            engine_name=self.name,
            threads=threads,
            busy_timeout_s=busy_timeout_s,
            device=device,
            dtype=dtype,
        )
        self.prefix_cache = PrefixCache(max_tokens=prefix_cache_tokens)
        # a prefix computed with an adapter's old weights must never serve its new ones
        self.model.on_adapter_change(self.prefix_cache.drop_adapter)
        self.prime_chunk_tokens: int | None = PRIME_CHUNK_TOKENS  # None: a prompt at once
        self._prompt_tokens: Counter[str] = Counter()
        self._primes: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersLLM:
        return cls(
            model_dir=resolve_model_dir(settings),
            threads=settings.engine_threads,
            prefix_cache_tokens=settings.llm_prefix_cache_tokens,
            device=settings.llm_device,
            dtype=settings.llm_dtype,
        )

    # --- generation ---

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        prompt = self.model.start_reply(request)
        try:
            yield from self._decode_loop(prompt, request, cancel)
        finally:
            self.model.end_reply(request.adapter)

    def count_tokens(self, messages: Sequence[ChatMessage], reply: str) -> tuple[int, int]:
        with self.model.lock:  # tokenizer calls go through the model's lock
            prompt = self.model.encode(messages)
            out = self.model.tokenizer(reply, add_special_tokens=False)["input_ids"]
        return len(prompt), len(out)

    def _decode_loop(
        self, prompt: list[int], request: GenerationRequest, cancel: threading.Event
    ) -> Iterator[str]:
        model, params = self.model, request.params
        sampler = Sampler(params, request.seed)
        reply = ReplyText(model.decode, params.stop)
        ids = torch.tensor([prompt])
        slot = request.adapter or BASE_ADAPTER
        step_ids, past = ids, None
        for _ in range(params.max_tokens):
            if cancel.is_set():
                return
            first = not reply.tokens
            with model.lock:
                # looked up once the model is ours: a prime that was running has
                # stored all it computed by then
                if first:
                    reused, kv = self.prefix_cache.lookup(slot, prompt)
                    step_ids, past = ids[:, reused:], as_cache(kv, model.config)
                    self._prompt_tokens["reused"] += reused
                    self._prompt_tokens["computed"] += len(prompt) - reused
                logits, past = self._forward(step_ids, ids.shape[1], past, slot)
            if first:
                # this request holds its adapter (start_reply), so no swap can land
                # between the forward and the store
                self.prefix_cache.store(slot, prompt, kv_of(past))
            if cancel.is_set():
                return
            next_id = sampler.pick(ids, logits)
            if next_id in model.eos:
                break
            step_ids = torch.tensor([[next_id]])
            ids = torch.cat([ids, step_ids], dim=1)
            delta, stopped = reply.append(next_id)
            if delta:
                yield delta
            if stopped:
                return
        if tail := reply.flush():
            yield tail

    def _forward(
        self, step_ids: torch.Tensor, total_len: int, past: Any, adapter: str
    ) -> tuple[torch.Tensor, Any]:
        # an all-ones mask, as generate() passes it, so replies match generate() exactly
        mask = torch.ones(1, total_len, dtype=torch.long, device=self.model.device)
        return self.model.forward(step_ids, attention_mask=mask, past=past, adapters=[adapter])

    def prompt_tokens(self) -> dict[str, int]:
        with self.model.lock:
            return {k: self._prompt_tokens[k] for k in ("reused", "computed")}

    def prime(self, request: GenerationRequest) -> None:
        """Prefill the request's prompt now and keep its KV state for later replies.

        In pieces of `prime_chunk_tokens`, yielding to replies: once any reply is in
        flight, priming stops after its current piece and keeps the prefix computed so
        far (counted in `primes()` as "yielded").
        """
        if self.prefix_cache.max_tokens <= 0:
            return
        model, adapter = self.model, request.adapter
        slot = adapter or BASE_ADAPTER
        with model.lock:
            info = model.resident(adapter) if adapter is not None else None
            if adapter is not None and info is None:
                raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.name)
            prompt = model.encode(request.messages)
        reused, kv = self.prefix_cache.lookup(slot, prompt)
        if reused == len(prompt) - 1:
            return
        ids, past, done = torch.tensor([prompt]), as_cache(kv, model.config), reused
        chunk = self.prime_chunk_tokens or len(prompt)
        while done < len(prompt):
            with model.lock:
                if model.replies_waiting():  # replies come first
                    self._primes["yielded"] += 1
                    return
                if adapter is not None and model.resident(adapter) is not info:
                    return  # swapped or unloaded meanwhile: its KV would be stale
                end = min(done + chunk, len(prompt))
                _, past = self._forward(ids[:, done:end], end, past, slot)
                done = end
                # under the lock, so no swap of the adapter comes between
                self.prefix_cache.store(slot, prompt[:done], kv_of(past))
        with model.lock:
            self._primes["whole"] += 1

    def primes(self) -> dict[str, int]:
        """Primes that prefilled their whole prompt, and those that yielded to a reply."""
        with self.model.lock:
            return {k: self._primes[k] for k in ("whole", "yielded")}
