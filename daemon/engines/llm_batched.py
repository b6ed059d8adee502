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

Everything about the model and its adapters (validation, resident names, hotswap,
waiting for users, per-row adapter routing) is the `TransformersModel`'s it holds, the
same kind the one-request engine holds; this engine adds a scheduler thread. Forwards
run under the model's lock, so adapter loads land between steps.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from personae.daemon.engines.base import GenerationRequest
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

log = logging.getLogger(__name__)

_DONE = object()


@dataclass(eq=False)
class _Row:
    """One reply in flight."""

    request: GenerationRequest
    prompt: list[int]
    cancel: threading.Event
    sampler: Sampler
    reply: ReplyText
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    gone: threading.Event = field(default_factory=threading.Event)
    #: why the row is done: "eos", "stop" or "length"; None while it runs
    finished: str | None = None

    @property
    def adapter(self) -> str:
        return self.request.adapter or BASE_ADAPTER

    @property
    def generated(self) -> list[int]:
        return self.reply.tokens

    @property
    def length(self) -> int:
        """Real tokens in the cache once the last generated token is fed back."""
        return len(self.prompt) + len(self.generated)

    def ids(self) -> torch.Tensor:
        return torch.tensor([self.prompt + self.generated])


class BatchedTransformersLLM(ModelHoldingLLM):
    name = "transformers-batched"
    supports_adapters = True

    def __init__(
        self,
        *,
        model_dir: str | Path,
        max_batch: int = 16,
        threads: int = 0,
        busy_timeout_s: float = 60.0,
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
        self._max_batch = max_batch
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
            device=settings.llm_device,
            dtype=settings.llm_dtype,
        )

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._scheduler.join(timeout=5)

    # --- the request side ---

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        prompt = self.model.start_reply(request)
        row = _Row(
            request=request,
            prompt=prompt,
            cancel=cancel,
            sampler=Sampler(request.params, request.seed),
            reply=ReplyText(self.model.decode, request.params.stop),
        )
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
        with self.model.lock:
            logits, cache = self._batch_forward(last, mask, positions, cache, rows)
        self._emit(rows, logits)
        return self._drop_finished(rows, cache, mask)

    def _batch_forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        rows: list[_Row],
    ) -> tuple[torch.Tensor, Any]:
        # the masks stay on the CPU (cheap to grow and trim); tokens are picked there
        return self.model.forward(
            input_ids,
            attention_mask=mask,
            past=cache,
            adapters=[r.adapter for r in rows],
            position_ids=positions,
        )

    def _prefill(self, joining: list[_Row]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        width = max(len(r.prompt) for r in joining)
        pad = self.model.tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(r.prompt)) + r.prompt for r in joining])
        mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in joining])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with self.model.lock:
            logits, cache = self._batch_forward(ids, mask, positions, None, joining)
        return logits, cache, mask

    def _emit(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Pick each row's next token and send its text; mark rows that are finished."""
        for i, row in enumerate(rows):
            next_id = row.sampler.pick(row.ids(), logits[i : i + 1])
            if next_id in self.model.eos:
                row.finished = "eos"
                continue
            delta, stopped = row.reply.append(next_id)
            if len(row.generated) >= row.request.params.max_tokens:
                row.finished = "length"
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
            if row.finished != "stop" and (tail := row.reply.flush()):
                row.out.put(tail)
            self._finish(row)
        if len(keep) < len(rows):
            rows, cache, mask = self._select(rows, cache, mask, keep)
        return rows, cache, mask

    def _finish(self, row: _Row, error: BaseException | None = None) -> None:
        if error is not None:
            row.out.put(error)
        row.out.put(_DONE)
        self.model.end_reply(row.request.adapter)

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
        merged = type(cache)(ddp_cache_data=layers, config=self.model.config)
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
