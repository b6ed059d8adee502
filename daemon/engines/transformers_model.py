"""One transformers base model with its tokenizer and the LoRA adapters resident in it.

The transformers engines (llm_transformers.py: one request's decode loop;
llm_batched.py: a batch of them) each hold one. Everything that touches the model goes
through its one lock: forwards, tokenizer calls, adapter loads and swaps. Replies
register while they run (`start_reply` / `end_reply`), so an adapter is never swapped
or unloaded under a reply that wears it, and priming can tell when replies wait.

Adapters are validated against the plain model before any weight is written
(adapters/files.py), so a corrupt or foreign adapter is refused with a clear message and
the resident ones keep working. A new version of a resident adapter is copied into its
tensors when shapes and settings agree (a hotswap), else it is unloaded and loaded.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from personae.daemon.adapters.files import (
    AdapterInfo,
    LoraPairs,
    ModelLayers,
    file_stamp,
    read_lora,
    swappable,
    validate,
)
from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.engines.special_tokens import SpecialTokenFilter, special_tokens_of
from personae.daemon.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in adapter_names
# becomes a key of torch ModuleDicts: no dots
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]{0,127}$")
#: validated folders whose weights stay in memory for a swap that follows
STAGED_ADAPTERS = 4
#: what `warmup` generates: two tokens, so the first player does not pay for lazy init
WARMUP_REQUEST = GenerationRequest(
    messages=[ChatMessage("user", "Hello.")],
    params=GenerationParams(temperature=0.0, max_tokens=2),
)


class TransformersModel:
    """The base model, its tokenizer and its resident adapters, behind one lock."""

    def __init__(
        self,
        *,
        model_dir: str | Path,
        engine_name: str,
        threads: int = 0,
        busy_timeout_s: float = 60.0,
        device: str = "cpu",
        dtype: str = "auto",
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        # a missing folder would be taken for a hub id and fail confusingly offline
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"LLM model folder {model_dir} has no config.json")
        if threads:
            torch.set_num_threads(threads)  # 0 keeps torch's default: all cores
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not self.tokenizer.chat_template:
            raise ConfigError(f"LLM model folder {model_dir}: tokenizer has no chat template")
        #: this model's own special tokens, never let through in a message's text
        self.special_filter = SpecialTokenFilter(special_tokens_of(self.tokenizer))
        self.engine_name = engine_name  # for its errors
        self.device, self.dtype = placement(device, dtype)
        #: the plain model; `_model` is a PeftModel around it while adapters are resident
        self.base = (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype).to(self.device).eval()
        )
        self._model: Any = self.base
        # taken before PEFT wraps layers, so validation always sees the plain model
        self.layers = ModelLayers.of(self.base)
        self.eos = _eos_ids(self.base, self.tokenizer)
        self.max_positions: int | None = getattr(self.base.config, "max_position_embeddings", None)
        self._busy_timeout_s = busy_timeout_s
        #: one lock for the model: forwards, tokenizer calls and adapter changes
        self.lock = threading.Condition()
        self._adapters: dict[str, AdapterInfo] = {}
        self._users: Counter[str] = Counter()  # in-flight replies per adapter
        # validated folders by (path, file stats): a swap back to a known version is a copy
        self._inspected: dict[tuple[Path, tuple[int, ...]], AdapterInfo] = {}
        # folder -> (its file stamp, weights read when it was validated), newest last
        self._staged: OrderedDict[Path, tuple[Any, LoraPairs]] = OrderedDict()
        self._lora_layers: dict[str, Any] | None = None  # module name -> LoRA layer, for swaps
        self._lora_modules: list[Any] | None = None  # every LoRA layer, for _wear
        self._row_hooks: list[Any] = []
        self._row_names: list[str] | None = None  # this forward's adapter per row, if mixed
        self._on_change: list[Callable[[str], None]] = []
        # replies waiting for the lock to register: priming yields to them at its next
        # piece. Python's lock is not fair, and a prime that re-takes it at once would
        # otherwise keep it for every piece
        self._arriving = 0
        self._arrivals = threading.Lock()

    @property
    def config(self) -> Any:
        """The base model's transformers config."""
        return self.base.config

    @property
    def adapters(self) -> dict[str, Path]:
        """Resident adapters: name -> folder their weights came from."""
        with self.lock:
            return {name: info.path for name, info in self._adapters.items()}

    def resident(self, name: str) -> AdapterInfo | None:
        """What resident adapter `name` wears now (its validated folder); call under the lock."""
        return self._adapters.get(name)

    def on_adapter_change(self, callback: Callable[[str], None]) -> None:
        """Call `callback(name)` (under the lock) whenever adapter `name`'s weights change
        or it leaves: state computed with its old weights is stale from then on."""
        self._on_change.append(callback)

    # --- replies ---

    def start_reply(self, request: GenerationRequest) -> list[int]:
        """Register a reply that wears `request.adapter`; its prompt's token ids.

        Announced before it waits for the lock, so a prime running in pieces gives the
        lock up at its next one. Every successful call is matched by one `end_reply`.
        """
        adapter = request.adapter
        with self._arriving_reply():
            if adapter is not None and adapter not in self._adapters:
                raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.engine_name)
            prompt = self.encode(request.messages)
            max_tokens = request.params.max_tokens
            if self.max_positions and len(prompt) + max_tokens > self.max_positions:
                raise EngineError(
                    f"prompt of {len(prompt)} tokens + max_tokens {max_tokens} exceeds "
                    f"the model's {self.max_positions} positions",
                    engine=self.engine_name,
                )
            self._users[adapter or BASE_ADAPTER] += 1
        return prompt

    def end_reply(self, adapter: str | None) -> None:
        with self.lock:
            self._users[adapter or BASE_ADAPTER] -= 1
            self.lock.notify_all()

    @property
    def arriving(self) -> int:
        """Replies announced but not yet registered."""
        return self._arriving

    def replies_waiting(self) -> bool:
        """Whether any reply is registered or about to be; call under the lock."""
        return bool(self._arriving or self._users.total())

    @contextlib.contextmanager
    def _arriving_reply(self) -> Iterator[None]:
        with self._arrivals:
            self._arriving += 1
        try:
            with self.lock:
                yield
        finally:
            with self._arrivals:
                self._arriving -= 1

    # --- tokens and forwards ---

    def encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        clean = self.special_filter
        chat = [{"role": m.role, "content": clean(m.content)} for m in messages]
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        # the template already spells out every special token
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    @torch.inference_mode()
    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor,
        past: Any,
        adapters: Sequence[str],
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """One forward under the lock (the caller holds it): each row of `input_ids` wears
        its adapter in `adapters` (BASE_ADAPTER: none). The last position's logits, on
        the CPU as float32, and the grown KV cache."""
        if self._model is not self.base:
            self._wear(adapters)
        device = self.device
        out = self._model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            position_ids=None if position_ids is None else position_ids.to(device),
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,
        )
        # sampling and stop checks run on the CPU, one vocabulary row per step
        return out.logits[:, -1, :].float().cpu(), out.past_key_values

    def _wear(self, names: Sequence[str]) -> None:
        """Make every LoRA layer apply each row's adapter for one forward.

        One adapter for every row: set as the layers' active one (their plain path, no
        per-adapter sub-batches). Mixed rows: PEFT's `adapter_names`, passed by hooks
        registered once (again after adapters change the layers) rather than by PEFT,
        which registers hooks on every module at every forward, ~30 ms per token here
        (bench/engines.py).
        """
        if self._lora_modules is None:
            from peft.tuners.lora import LoraLayer

            for handle in self._row_hooks:
                handle.remove()
            self._row_hooks = []
            self._lora_modules = [m for m in self._model.modules() if isinstance(m, LoraLayer)]
        if len(set(names)) == 1:
            self._row_names = None
            active = [] if names[0] == BASE_ADAPTER else [names[0]]
            for module in self._lora_modules:
                module._active_adapter = active
            return
        if not self._row_hooks:
            self._row_hooks = [
                m.register_forward_pre_hook(self._inject_rows, with_kwargs=True)
                for m in self._lora_modules
            ]
        self._row_names = list(names)

    def _inject_rows(self, module: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        if self._row_names is None:
            return None
        return args, {**kwargs, "adapter_names": self._row_names}

    # --- adapters ---

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Make adapter `name` resident with the weights in `path`.

        Loading a name that is already resident replaces its weights (in place when the
        shapes allow, see swap_adapter). Raises ConfigError for a bad folder, leaving
        every resident adapter as it was.
        """
        if not _ADAPTER_NAME.match(name) or name == BASE_ADAPTER:
            raise ConfigError(f"invalid adapter name {name!r}: use letters, digits, '_@+-'")
        info = self.inspect_adapter(path)
        with self.lock:
            if name in self._adapters:
                self._wait_idle(name)
                if swappable(self._adapters[name], info):
                    self._hotswap(name, info)
                    return
                self._remove(name)
            self._add(name, info)

    def swap_adapter(self, name: str, path: str | Path) -> None:
        """Replace resident adapter `name`'s weights in place with a new version of it.

        Cheaper than unload + load (no module surgery). The new version must change the
        same layers with the same ranks; replies wearing `name` finish first.
        """
        info = self.inspect_adapter(path)
        with self.lock:
            current = self._adapters.get(name)
            if current is None:
                raise EngineError(f"adapter {name!r} is not loaded", engine=self.engine_name)
            if not swappable(current, info):
                raise ConfigError(
                    f"adapter {info.path} cannot replace {name!r} in place: it must change "
                    "the same layers with the same ranks; unload and load it instead"
                )
            self._wait_idle(name)
            self._hotswap(name, info)

    def unload_adapter(self, name: str) -> None:
        with self.lock:
            if name not in self._adapters:
                raise EngineError(f"adapter {name!r} is not loaded", engine=self.engine_name)
            self._wait_idle(name)
            self._remove(name)

    def inspect_adapter(self, path: str | Path) -> AdapterInfo:
        """Validate a PEFT LoRA folder against this model without touching the model.

        A folder whose files are unchanged (same size, mtime and inode) is validated once:
        the checks cost ~15 ms, ten times the weight copy of a swap. The weights read
        for the check stay in memory for the few most recent folders, so swapping to a
        version just validated (a deployment's gate, then its swap) is only a copy.
        """
        path = Path(path)
        try:
            key = (path.resolve(), file_stamp(path))
        except OSError:
            return validate(path, self.layers)[0]  # explains what is missing
        with self.lock:
            info = self._inspected.get(key)
        if info is None:
            info, weights = validate(path, self.layers)
            with self.lock:
                if len(self._inspected) >= 256:
                    self._inspected.clear()
                self._inspected[key] = info
                self._staged[info.path] = (key, weights)
                self._staged.move_to_end(info.path)
                while len(self._staged) > STAGED_ADAPTERS:
                    self._staged.popitem(last=False)
        return info

    def _changed(self, name: str) -> None:
        for callback in self._on_change:
            callback(name)

    def _add(self, name: str, info: AdapterInfo) -> None:
        from peft import PeftModel

        self._lora_layers = self._lora_modules = None  # a failed load may have wrapped some
        try:
            if self._model is self.base:
                self._model = PeftModel.from_pretrained(
                    self.base, str(info.path), adapter_name=name, is_trainable=False
                )
            else:
                self._model.load_adapter(str(info.path), adapter_name=name, is_trainable=False)
        except (ValueError, RuntimeError, KeyError, OSError) as exc:
            if self._model is not self.base and name in self._model.peft_config:
                self._model.delete_adapter(name)
            raise ConfigError(f"adapter {info.path}: PEFT could not load it: {exc}") from exc
        self._model.eval()
        self._adapters[name] = info
        self._lora_layers = self._lora_modules = None
        self._changed(name)

    def _hotswap(self, name: str, info: AdapterInfo) -> None:
        """Copy a new version's weights into resident adapter `name`'s tensors.

        What PEFT's `hotswap_adapter` does, without its per-call name matching and checks
        (~25 ms whatever the rank, against 1-4 ms for the copy: bench/adapter_switch.py):
        the folder is already validated, shapes and configs checked equal, and replies
        wearing `name` have finished. Per-module alpha or rank patterns go through
        PEFT's own hotswap.
        """
        config = info.config
        try:
            if config.alpha_pattern or config.rank_pattern:
                from peft.utils.hotswap import hotswap_adapter

                # PEFT checks the new config against the *active* adapter's
                self._model.set_adapter(name, inference_mode=True)
                hotswap_adapter(
                    self._model,
                    str(info.path),
                    adapter_name=name,
                    torch_device=str(self.base.device),
                )
            else:
                staged = self._staged.get(info.path)
                if staged is not None and staged[0] == (info.path, file_stamp(info.path)):
                    weights = staged[1]
                else:
                    weights = read_lora(info.path)
                if self._lora_layers is None:  # module surgery since the last swap
                    self._lora_layers = dict(self._model.base_model.model.named_modules())
                with torch.no_grad():
                    for module, (a, b) in weights.items():
                        layer = self._lora_layers[module]
                        layer.lora_A[name].weight.copy_(a)
                        layer.lora_B[name].weight.copy_(b)
                        rank = layer.r[name]
                        root = math.sqrt(rank) if config.use_rslora else rank
                        layer.scaling[name] = config.lora_alpha / root
        except (ValueError, RuntimeError, KeyError, OSError) as exc:
            raise ConfigError(f"adapter {info.path}: cannot swap into {name!r}: {exc}") from exc
        finally:
            self._changed(name)  # even a failed copy may have written some
        self._adapters[name] = info

    def _remove(self, name: str) -> None:
        if len(self._adapters) == 1:
            # the last one: strip the LoRA layers so base requests run the plain model
            self._model = self._model.unload()
        else:
            # PEFT warns when the active adapter is deleted; nothing relies on it
            other = next(n for n in self._adapters if n != name)
            self._model.set_adapter(other, inference_mode=True)  # the model's and each layer's
            self._model.delete_adapter(name)
        del self._adapters[name]
        self._lora_layers = self._lora_modules = None
        self._changed(name)

    def _wait_idle(self, name: str) -> None:
        """Let replies that wear `name` finish (the lock is released while waiting)."""
        if not self.lock.wait_for(lambda: self._users[name] == 0, self._busy_timeout_s):
            raise EngineError(
                f"adapter {name!r} is still in use after {self._busy_timeout_s:.0f} s",
                engine=self.engine_name,
                retryable=True,
            )


def placement(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """The device and weight type for `llm_device` / `llm_dtype` (each may be "auto")."""
    cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    if device.startswith("cuda") and not cuda:
        raise ConfigError(
            f"llm_device={device!r} but torch sees no CUDA device "
            "(this torch build or machine has none); use llm_device=cpu or auto"
        )
    where = torch.device(device)
    if dtype == "auto":
        if where.type == "cpu":
            return where, torch.float32  # half types are slower than float32 on most CPUs
        return where, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    kinds = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in kinds:
        raise ConfigError(f"llm_dtype={dtype!r}: expected auto, {', '.join(kinds)}")
    return where, kinds[dtype]


def resolve_model_dir(settings: Settings) -> Path:
    """settings.llm_model, or the bundled SmolLM2 prepared as a transformers checkpoint."""
    if settings.llm_model:
        return Path(settings.llm_model)
    from personae.daemon.models.smollm2 import base_model_dir

    return base_model_dir(settings)


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return frozenset(ids)
