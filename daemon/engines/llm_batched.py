"""Continuous batching with per-row adapters on the transformers engine.

Concurrent replies, each wearing its own character's LoRA, are decoded together: one
forward per step for the whole batch, PEFT's `adapter_names` giving every row its
adapter ("__base__" for none). Requests join at the next step after they arrive and
leave the step they finish, are cancelled, or their reader goes away.

KV layout: one shared, left-padded cache. Rows of different lengths sit right-aligned
in a `[batch, heads, length, dim]` cache; an attention mask hides each row's padding
and explicit position ids give every row its true positions (keys are stored already
rotated, so where a row sits in the cache does not matter to RoPE). The alternative,
per-row caches stacked for every step, copies the whole KV once per token; the shared
cache copies only when the batch changes:

- joining: the newcomers' prompts are prefilled together in one left-padded forward,
  then their cache and the running one are left-padded to a common length and
  concatenated along the batch;
- leaving: the row is dropped from the batch and the columns that are padding in every
  remaining row are cut, so the cache never grows beyond the longest live row.

Masked positions contribute exactly zero to attention, so each row's greedy reply is
the one it gets alone (tests/perf checks it token for token).

Everything about adapters (validation, resident names, hotswap, waiting for users) is
the transformers engine's: this class only replaces its one-request decode loop with a
scheduler thread. Forwards run under the engine's model lock, so adapter loads land
between steps.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from personae.daemon.engines.base import GenerationRequest
from personae.daemon.engines.llm_transformers import (
    BASE_ADAPTER,
    StopScanner,
    TransformersLLM,
    _logits_processors,
    _pick,
    resolve_model_dir,
)
from personae.daemon.errors import EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

_DONE = object()


@dataclass(eq=False)
class _Row:
    """One reply in flight."""

    request: GenerationRequest
    prompt: list[int]
    cancel: threading.Event
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    gone: threading.Event = field(default_factory=threading.Event)
    generated: list[int] = field(default_factory=list)
    rng: torch.Generator | None = None
    processors: Any = None
    stops: StopScanner | None = None
    #: why the row is done: "eos", "stop" or "length"; None while it runs
    finished: str | None = None

    @property
    def adapter(self) -> str:
        return self.request.adapter or BASE_ADAPTER

    @property
    def length(self) -> int:
        """Real tokens in the cache once the last generated token is fed back."""
        return len(self.prompt) + len(self.generated)

    def ids(self) -> torch.Tensor:
        return torch.tensor([self.prompt + self.generated])


class BatchedTransformersLLM(TransformersLLM):
    name = "transformers-batched"

    def __init__(self, *, max_batch: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_batch = max_batch
        self._row_hooks: list[Any] = []
        self._row_names: list[str] | None = None
        self._pending: queue.SimpleQueue[_Row] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closed = False
        self._scheduler = threading.Thread(
            target=self._run, name="llm-batch-scheduler", daemon=True
        )
        self._scheduler.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchedTransformersLLM:
        # rows share one left-padded cache built by the scheduler: no per-prompt reuse yet
        return cls(
            model_dir=resolve_model_dir(settings),
            threads=settings.engine_threads,
            max_batch=settings.llm_batch_size,
            prefix_cache_tokens=0,
            device=settings.llm_device,
            dtype=settings.llm_dtype,
        )

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._scheduler.join(timeout=5)

    # --- the request side ---

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        adapter = request.adapter
        with self._arriving_reply():
            if adapter is not None and adapter not in self._adapters:
                raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.name)
            prompt = self._encode(request.messages)
            self._users[adapter or BASE_ADAPTER] += 1
        params = request.params
        if self._max_positions and len(prompt) + params.max_tokens > self._max_positions:
            self._release(adapter)
            raise EngineError(
                f"prompt of {len(prompt)} tokens + max_tokens {params.max_tokens} exceeds "
                f"the model's {self._max_positions} positions",
                engine=self.name,
            )
        row = _Row(request=request, prompt=prompt, cancel=cancel)
        row.rng = torch.Generator().manual_seed(
            request.seed if request.seed is not None else random.getrandbits(63)
        )
        row.processors = _logits_processors(params)
        row.stops = StopScanner(params.stop)
        self._pending.put(row)
        self._wake.set()
        try:
            while True:
                item = row.out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            row.gone.set()  # the scheduler drops the row at its next step
            self._wake.set()

    def _release(self, adapter: str | None) -> None:
        with self._lock:
            self._users[adapter or BASE_ADAPTER] -= 1
            self._lock.notify_all()

    # --- the scheduler ---

    def _run(self) -> None:
        rows: list[_Row] = []
        cache: Any = None  # DynamicCache over `rows`, left-padded
        mask = torch.zeros(0, 0, dtype=torch.long)  # [rows, cache length]: 1 = real token
        while not self._closed:
            if not rows and self._pending.empty():
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            try:
                rows, cache, mask = self._step(rows, cache, mask)
            except Exception as exc:  # one bad step fails the replies in it, not the engine
                log.exception("batched decode step failed")
                error = EngineError(f"decode step failed: {exc}", engine=self.name)
                for row in rows:
                    self._finish(row, error)
                rows, cache, mask = [], None, torch.zeros(0, 0, dtype=torch.long)

    def _step(self, rows: list[_Row], cache: Any, mask: torch.Tensor):
        # 1. drop rows whose reader left or cancelled
        keep = [i for i, r in enumerate(rows) if not (r.cancel.is_set() or r.gone.is_set())]
        if len(keep) < len(rows):
            for i, r in enumerate(rows):
                if i not in keep:
                    self._finish(r)
            rows, cache, mask = self._select(rows, cache, mask, keep)

        # 2. admit newcomers: prefill them together, then merge into the batch
        joining: list[_Row] = []
        while len(rows) + len(joining) < self._max_batch and not self._pending.empty():
            row = self._pending.get()
            if row.cancel.is_set() or row.gone.is_set():
                self._finish(row)
            else:
                joining.append(row)
        if joining:
            try:
                logits, new_cache, new_mask = self._prefill(joining)
                self._emit(joining, logits)
            except Exception as exc:  # the newcomers fail; the running rows carry on
                log.exception("batched prefill failed")
                for row in joining:
                    self._finish(row, EngineError(f"prefill failed: {exc}", engine=self.name))
                return rows, cache, mask
            rows, cache, mask = self._merge(rows, cache, mask, joining, new_cache, new_mask)
            rows, cache, mask = self._drop_finished(rows, cache, mask)
            return rows, cache, mask
        if not rows:
            return rows, cache, mask

        # 3. one decode step for everyone
        last = torch.tensor([[r.generated[-1]] for r in rows])
        mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=torch.long)], dim=1)
        positions = torch.tensor([[r.length - 1] for r in rows])
        with self._lock:
            logits, cache = self._batch_forward(last, mask, positions, cache, rows)
        self._emit(rows, logits)
        return self._drop_finished(rows, cache, mask)

    @torch.inference_mode()
    def _batch_forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        rows: list[_Row],
    ) -> tuple[torch.Tensor, Any]:
        if self._model is not self._base:
            self._route_rows([r.adapter for r in rows])
        device = self._device
        out = self._model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        # the masks stay on the CPU (cheap to grow and trim); tokens are picked there
        return out.logits[:, -1, :].float().cpu(), out.past_key_values

    def _route_rows(self, names: list[str]) -> None:
        """Give every LoRA layer this forward's per-row adapter names.

        What PEFT does for `model(adapter_names=...)`, but with hooks registered once
        (again after adapters change the layers) instead of on every module at every
        forward, which cost ~30 ms per step here. Called under the model lock.
        """
        if self._lora_modules is None:
            from peft.tuners.lora import LoraLayer

            for handle in self._row_hooks:
                handle.remove()
            self._lora_modules = [m for m in self._model.modules() if isinstance(m, LoraLayer)]
            self._row_hooks = [
                m.register_forward_pre_hook(self._inject_rows, with_kwargs=True)
                for m in self._lora_modules
            ]
        if len(set(names)) == 1:
            # one adapter for every row: the layers' plain path, no per-adapter sub-batches
            self._row_names = None
            active = [] if names[0] == BASE_ADAPTER else [names[0]]
            for module in self._lora_modules:
                module._active_adapter = active
        else:
            self._row_names = names

    def _inject_rows(self, module: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        if self._row_names is None:
            return None
        return args, {**kwargs, "adapter_names": self._row_names}

    def _prefill(self, joining: list[_Row]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        width = max(len(r.prompt) for r in joining)
        pad = self._tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r.prompt)) + r.prompt for r in joining])
        mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in joining])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with self._lock:
            logits, cache = self._batch_forward(ids, mask, positions, None, joining)
        return logits, cache, mask

    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Pick each row's next token and send its text; mark rows that are finished."""
        for i, row in enumerate(rows):
            scores = row.processors(row.ids(), logits[i : i + 1])
            next_id = _pick(scores, row.request.params.temperature, row.rng)
            if next_id in self._eos:
                row.finished = "eos"
                continue
            row.generated.append(next_id)
            if len(row.generated) >= row.request.params.max_tokens:
                row.finished = "length"
            text = self._tokenizer.decode(row.generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue
            delta, stopped = row.stops.feed(text)  # type: ignore[union-attr]
            if delta:
                row.out.put(delta)
            if stopped:
                row.finished = "stop"

    def _drop_finished(self, rows: list[_Row], cache: Any, mask: torch.Tensor):
        keep = []
        for i, row in enumerate(rows):
            if row.finished is None:
                keep.append(i)
                continue
            if row.finished != "stop" and (tail := row.stops.flush()):  # type: ignore[union-attr]
                row.out.put(tail)
            self._finish(row)
        if len(keep) < len(rows):
            rows, cache, mask = self._select(rows, cache, mask, keep)
        return rows, cache, mask

    def _finish(self, row: _Row, error: BaseException | None = None) -> None:
        if error is not None:
            row.out.put(error)
        row.out.put(_DONE)
        self._release(row.request.adapter)

    # --- cache surgery ---

    @staticmethod
    def _select(rows: list[_Row], cache: Any, mask: torch.Tensor, keep: list[int]):
        if not keep:
            return [], None, torch.zeros(0, 0, dtype=torch.long)
        index = torch.tensor(keep)
        mask = mask[index]
        cache.batch_select_indices(index.to(cache.layers[0].keys.device))
        # cut the columns that are padding in every remaining row
        cut = int((mask.cumsum(-1) == 0).sum(-1).min())
        if cut:
            mask = mask[:, cut:]
            for layer in cache.layers:
                layer.keys = layer.keys[:, :, cut:]
                layer.values = layer.values[:, :, cut:]
        return [rows[i] for i in keep], cache, mask

    def _merge(self, rows, cache, mask, new_rows, new_cache, new_mask):
        if not rows:
            return list(new_rows), new_cache, new_mask
        length = max(mask.shape[1], new_mask.shape[1])
        layers = []
        for old, new in zip(cache.layers, new_cache.layers, strict=True):
            keys = torch.cat([_left_pad(old.keys, length), _left_pad(new.keys, length)])
            values = torch.cat([_left_pad(old.values, length), _left_pad(new.values, length)])
            layers.append((keys, values))
        merged = type(cache)(ddp_cache_data=layers, config=self._base.config)
        mask = torch.cat([_left_pad_mask(mask, length), _left_pad_mask(new_mask, length)])
        return [*rows, *new_rows], merged, mask


def _left_pad(kv: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - kv.shape[2]
    if missing == 0:
        return kv
    shape = (kv.shape[0], kv.shape[1], missing, kv.shape[3])
    return torch.cat([kv.new_zeros(shape), kv], dim=2)


def _left_pad_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - mask.shape[1]
    if missing == 0:
        return mask
    return torch.cat([mask.new_zeros(mask.shape[0], missing), mask], dim=1)
