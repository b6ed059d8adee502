"""LLM on llama.cpp (the `xllamacpp` package, prebuilt): the bundled Q4_1 GGUF, on CPU.

Per-character LoRA adapters are PEFT folders converted once to GGUF by the project's
converter (adapters/gguf.py) and cached by content. llama.cpp's server takes its adapter
list when it starts and a per-request scale for each, so:

- a request names its adapter by giving it scale 1 and every other one scale 0;
- loading or unloading an adapter marks the list changed, and the server is rebuilt
  with the new list before the next request (the base loads in about a second; a burst
  of loads at start-up costs one rebuild). A rebuild waits for in-flight replies;
- the prompt cache is on: llama.cpp clears a slot's cached KV when a request's adapter
  scales differ from the slot's last ones (every request here sends the whole list),
  so a character's state never leaks into another's reply. To keep that cache useful,
  each adapter sticks to a slot of its own while one is idle (least recently used
  first), so the next turn with the same character prefills only what is new: its
  system prompt and the history so far are already there.

Streaming: xllamacpp calls back once per token from the request's thread; a producer
thread feeds a queue that `generate` yields from, and the callback returns True (stop)
as soon as `cancel` is set or the consumer went away, so cancellation lands within one
token. Stop sequences go to llama.cpp, which never emits them.

Threads: llama.cpp's threads synchronise at every layer; on a busy 2-core machine two
threads spin against each other and run ~10x slower than one (measured: 2 vs 19 tok/s).
`llamacpp_threads` 0 therefore means half the cores (1 on 2 cores), which also leaves a
core for STT and TTS in the voice loop.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personae.daemon.adapters.gguf import BaseInfo, converted
from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest, LLMEngine
from personae.daemon.engines.special_tokens import SpecialTokenFilter, special_tokens_of_gguf
from personae.daemon.errors import ConfigError, EngineError, missing_extra

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

_DONE = object()


class LlamaCppLLM(LLMEngine):
    name = "llamacpp"
    supports_adapters = True

    def __init__(
        self,
        *,
        gguf_file: str | Path,
        lora_cache_dir: Path,
        threads: int = 0,
        batch_threads: int = 0,
        parallel: int = 2,
        ctx_per_slot: int = 2048,
        busy_timeout_s: float = 60.0,
        prompt_cache: bool = True,
    ) -> None:
        try:
            import xllamacpp  # noqa: F401
        except ImportError:
            raise missing_extra("xllamacpp", "llamacpp") from None
        self._gguf = Path(gguf_file)
        if not self._gguf.is_file():
            raise ConfigError(f"GGUF model {self._gguf} does not exist")
        self._base = BaseInfo.read(self._gguf)
        # llama.cpp parses its special tokens out of the templated prompt: player text
        # must not be able to spell them (as the transformers engines do)
        self._clean = SpecialTokenFilter(special_tokens_of_gguf(self._gguf))
        self._lora_cache = lora_cache_dir
        self._threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self._batch_threads = batch_threads or self._threads
        self._parallel = parallel
        self._ctx_per_slot = ctx_per_slot
        self._busy_timeout_s = busy_timeout_s
        self._prompt_cache = prompt_cache
        self._adapters: dict[str, Path] = {}  # name -> converted GGUF
        self._sources: dict[str, Path] = {}  # name -> PEFT folder
        self._order: list[str] = []  # adapter ids in the running server
        self._server: Any = None
        self._dirty = True
        self._in_flight = 0
        self._users: Counter[str] = Counter()
        self._prompt_tokens: Counter[str] = Counter()
        self._slot_of: dict[str, int] = {}  # adapter ("" = base) -> slot holding its KV
        self._slot_busy: Counter[int] = Counter()
        self._slot_used: dict[int, int] = {}  # slot -> tick of its last request
        self._priming: set[int] = set()  # slots prefilling a prompt ahead of its reply
        self._tick = 0
        self._cond = threading.Condition()

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppLLM:
        from personae.daemon.models.smollm2 import gguf_path

        gguf_file = Path(settings.llamacpp_model) if settings.llamacpp_model else gguf_path()
        return cls(
            gguf_file=gguf_file,
            lora_cache_dir=settings.cache_dir / "gguf-lora",
            threads=settings.llamacpp_threads,
            batch_threads=settings.llamacpp_batch_threads,
            parallel=settings.llamacpp_parallel,
            prompt_cache=settings.llamacpp_prompt_cache,
        )

    @property
    def adapters(self) -> dict[str, Path]:
        """Resident adapters: name -> PEFT folder they were converted from."""
        with self._cond:
            return dict(self._sources)

    # --- adapters ---

    def load_adapter(self, name: str, path: str | Path) -> None:
        source = Path(path)
        if not source.is_dir():
            raise ConfigError(f"adapter folder {source} does not exist")
        gguf_file = converted(source, self._base, self._lora_cache)
        with self._cond:
            self._wait_unused(name)
            self._adapters[name] = gguf_file
            self._sources[name] = source.resolve()
            self._dirty = True

    def unload_adapter(self, name: str) -> None:
        with self._cond:
            if name not in self._adapters:
                raise EngineError(f"adapter {name!r} is not loaded", engine=self.name)
            self._wait_unused(name)
            del self._adapters[name], self._sources[name]
            self._dirty = True

    def _wait_unused(self, name: str) -> None:
        if not self._cond.wait_for(lambda: self._users[name] == 0, self._busy_timeout_s):
            raise EngineError(
                f"adapter {name!r} is still in use after {self._busy_timeout_s:.0f} s",
                engine=self.name,
                retryable=True,
            )

    # --- the server ---

    def _ensure_server(self) -> None:
        """Rebuild the server if the adapter list changed (caller holds the condition)."""
        if not self._dirty:
            return
        if not self._cond.wait_for(lambda: self._in_flight == 0, self._busy_timeout_s):
            raise EngineError("replies still running; cannot change adapters", engine=self.name)
        if not self._dirty:  # another thread rebuilt while we waited
            return
        self._server = None  # the old one frees its memory and threads first
        order = sorted(self._adapters)
        self._server = self._start(order)
        self._order = order
        self._dirty = False
        self._slot_of.clear()  # a new server starts with empty slots

    def _start(self, order: Sequence[str]) -> Any:
        import xllamacpp as xl

        params = xl.CommonParams()
        params.model.path = str(self._gguf)
        params.n_parallel = self._parallel
        params.n_ctx = self._ctx_per_slot * self._parallel
        params.cpuparams.n_threads = self._threads
        params.cpuparams_batch.n_threads = self._batch_threads
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.poll = 0  # no spinning between tokens: the CPU is shared with STT and TTS
        params.cache_prompt = self._prompt_cache
        # llama.cpp's host-memory prompt cache restores a saved state into any slot by
        # token similarity alone, whatever adapter computed it: a leak between characters
        params.cache_ram_mib = 0
        params.cache_idle_slots = False
        params.warmup = False
        params.verbosity = 0
        params.port = 0  # xllamacpp always listens; an ephemeral, keyed, local port
        params.api_keys = [secrets.token_hex(16)]  # nothing outside this process can use it
        params.lora_init_without_apply = True
        params.lora_adapters = [
            xl.CommonAdapterLoraInfo(str(self._adapters[n]), 0.0) for n in order
        ]
        try:
            return xl.Server(params)
        except RuntimeError as exc:
            raise EngineError(f"llama.cpp could not start: {exc}", engine=self.name) from exc

    # --- generation ---

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        return self._generate(request, cancel, priming=False)

    def prime(self, request: GenerationRequest) -> None:
        """Prefill the prompt into the adapter's slot (one token is generated and dropped):
        the slot's cache then starts like the adapter's next prompt."""
        if not self._prompt_cache:
            return
        params = request.params.model_copy(update={"max_tokens": 1, "temperature": 0.0})
        probe = GenerationRequest(request.messages, params, adapter=request.adapter)
        for _ in self._generate(probe, threading.Event(), priming=True):
            pass

    def _generate(
        self, request: GenerationRequest, cancel: threading.Event, *, priming: bool
    ) -> Iterator[str]:
        adapter = request.adapter
        with self._cond:
            if adapter is not None and adapter not in self._adapters:
                raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.name)
            # A reply that finds its adapter's slot being primed waits for that prefill
            # (a fraction of a second) and reuses it, instead of starting cold elsewhere.
            self._cond.wait_for(
                lambda: self._slot_of.get(adapter or "") not in self._priming,
                self._busy_timeout_s,
            )
            self._ensure_server()
            server, body = self._server, self._body(request)
            slot = self._pick_slot(adapter or "")
            body["id_slot"] = slot
            self._in_flight += 1
            self._users[adapter or ""] += 1
            if priming and slot >= 0:
                self._priming.add(slot)
        try:
            yield from self._stream(server, body, cancel)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._users[adapter or ""] -= 1
                if slot >= 0:
                    self._slot_busy[slot] -= 1
                if priming:
                    self._priming.discard(slot)
                self._cond.notify_all()

    def prompt_tokens(self) -> dict[str, int]:
        with self._cond:
            return {k: self._prompt_tokens[k] for k in ("reused", "computed")}

    def _pick_slot(self, adapter: str) -> int:
        """The adapter's own slot if idle, else the idle slot used longest ago; -1 lets
        llama.cpp choose (every slot busy: a request must never wait for a slot)."""
        if not self._prompt_cache:
            return -1
        idle = [i for i in range(self._parallel) if self._slot_busy[i] == 0]
        if not idle:
            return -1
        slot = self._slot_of.get(adapter)
        if slot not in idle:
            slot = min(idle, key=lambda i: self._slot_used.get(i, -1))
            for name, held in list(self._slot_of.items()):
                if held == slot:
                    del self._slot_of[name]
            self._slot_of[adapter] = slot
        self._tick += 1
        self._slot_used[slot] = self._tick
        self._slot_busy[slot] += 1
        return slot

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "messages": [
                {"role": m.role, "content": self._clean(m.content)} for m in request.messages
            ],
            "stream": True,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            # transformers' sampling, spelled out: llama.cpp's own defaults differ. Greedy
            # is top-1 after the penalties, which spares llama.cpp's samplers a sort of
            # the whole vocabulary at every token
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "top_k": 0 if params.temperature > 0 else 1,
            "min_p": 0.0,
            "repeat_penalty": params.repetition_penalty,
            "repeat_last_n": self._ctx_per_slot,  # the whole reply and prompt, as transformers
            "stop": list(params.stop),
            "cache_prompt": self._prompt_cache,
            "lora": [
                {"id": i, "scale": 1.0 if n == request.adapter else 0.0}
                for i, n in enumerate(self._order)
            ],
        }
        if request.seed is not None:
            body["seed"] = request.seed & 0xFFFFFFFF
        return body

    def _stream(self, server: Any, body: dict[str, Any], cancel: threading.Event) -> Iterator[str]:
        chunks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        gone = threading.Event()  # the consumer stopped iterating

        def on_chunk(data: Any) -> bool:
            if cancel.is_set() or gone.is_set():
                return True
            chunks.put(data)
            return False

        def produce() -> None:
            try:
                server.handle_chat_completions(body, on_chunk)
            except Exception as exc:  # handed to the consumer and raised there
                chunks.put(exc)
            finally:
                chunks.put(_DONE)

        worker = threading.Thread(target=produce, name="llamacpp-request", daemon=True)
        worker.start()
        try:
            while True:
                item = chunks.get()
                if item is _DONE:
                    return
                if isinstance(item, Exception):
                    raise EngineError(f"llama.cpp failed: {item}", engine=self.name) from item
                if cancel.is_set():
                    return
                if isinstance(item, str | bytes):
                    item = json.loads(item)
                if timings := item.get("timings"):
                    with self._cond:  # prompt tokens served from a slot's cache vs computed
                        self._prompt_tokens["reused"] += int(timings.get("cache_n", 0))
                        self._prompt_tokens["computed"] += int(timings.get("prompt_n", 0))
                if text := _delta(item, self.name):
                    yield text
        finally:
            gone.set()
            worker.join()

    def warmup(self) -> None:
        request = GenerationRequest(
            messages=[ChatMessage("user", "Hello.")],
            params=GenerationParams(temperature=0.0, max_tokens=2),
        )
        for _ in self.generate(request, threading.Event()):
            pass


def _delta(chunk: Any, engine: str) -> str:
    if isinstance(chunk, str | bytes):
        chunk = json.loads(chunk)
    if "error" in chunk:
        message = chunk["error"].get("message", chunk["error"])
        raise EngineError(f"llama.cpp refused the request: {message}", engine=engine)
    choices = chunk.get("choices") or ()
    if not choices:
        return ""
    return choices[0].get("delta", {}).get("content") or ""
