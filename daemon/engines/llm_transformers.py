"""LLM on transformers + PEFT: one shared base model, each character's LoRA resident by name.

Decoding is a manual loop with a KV cache: one forward per token under the model
lock, so requests interleave token by token, cancellation lands within one token, and
sampling uses a per-request RNG (a seed reproduces a reply whatever else runs in the
process). Each forward sets the adapter its request wears on the LoRA layers (`_wear`),
inside the lock, so concurrent requests cannot wear each other's adapter. Prompt
prefixes already computed with the same adapter are reused (prefix_cache.py).

Adapters are validated against this model before any weight is written, so a corrupt
or foreign adapter is refused with a clear message and the resident ones keep working.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest, LLMEngine
from personae.daemon.engines.prefix_cache import KV, PrefixCache
from personae.daemon.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in adapter_names
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# becomes a key of torch ModuleDicts: no dots
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]{0,127}$")
#: validated folders whose weights stay in memory for a swap that follows
STAGED_ADAPTERS = 4
#: priming prefills this many tokens per forward, and stops between two as soon as a
#: reply is in flight: it uses idle time only, so it never holds the model for a whole
#: prompt (~0.3-3 s here) while other players' replies wait; what it has computed by
#: then is kept. ~0.15 s a piece on one core of the 2-core Xeon in docs/benchmarks.md.
PRIME_CHUNK_TOKENS = 32
_LORA_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight$")


@dataclass(frozen=True)
class AdapterInfo:
    """A validated adapter folder: what it changes in the model and how."""

    path: Path
    config: Any  # peft.LoraConfig
    #: base module name -> (rank, in_features, out_features)
    shapes: dict[str, tuple[int, int, int]]


class TransformersLLM(LLMEngine):
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
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        # a missing folder would be taken for a hub id and fail confusingly offline
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"LLM model folder {model_dir} has no config.json")
        if threads:
            torch.set_num_threads(threads)  # 0 keeps torch's default: all cores
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not self._tokenizer.chat_template:
            raise ConfigError(f"LLM model folder {model_dir}: tokenizer has no chat template")
        self._device, self._dtype = placement(device, dtype)
        self._base = (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=self._dtype)
            .to(self._device)
            .eval()
        )
        self._model: Any = self._base  # a PeftModel around _base while adapters are resident
        # taken before PEFT wraps layers, so validation always sees the plain model
        self._modules = tuple(n for n, _ in self._base.named_modules() if n)
        self._linears = {
            n: (m.in_features, m.out_features)
            for n, m in self._base.named_modules()
            if isinstance(m, torch.nn.Linear)
        }
        self._eos = _eos_ids(self._base, self._tokenizer)
        self._max_positions = getattr(self._base.config, "max_position_embeddings", None)
        self._busy_timeout_s = busy_timeout_s
        self._adapters: dict[str, AdapterInfo] = {}
        self._users: Counter[str] = Counter()  # in-flight requests per adapter
        self.prefix_cache = PrefixCache(max_tokens=prefix_cache_tokens)
        self._prompt_tokens: Counter[str] = Counter()
        self._primes: Counter[str] = Counter()
        # validated folders by (path, file stats): a swap back to a known version is a copy
        self._inspected: dict[tuple[Path, tuple[int, ...]], AdapterInfo] = {}
        self._lora_layers: dict[str, Any] | None = None  # module name -> LoRA layer, for swaps
        self._lora_modules: list[Any] | None = None  # every LoRA layer, for _wear
        # folder -> (its file stamp, weights read when it was validated), newest last
        self._staged: OrderedDict[Path, tuple[Any, dict[str, torch.Tensor]]] = OrderedDict()
        # one lock for the model: forwards, tokenizer calls and adapter changes
        self._lock = threading.Condition()
        self.prime_chunk_tokens: int | None = PRIME_CHUNK_TOKENS  # None: a prompt at once
        # replies waiting for the model lock to register: priming yields to them at its
        # next piece. Python's lock is not fair, and a prime that re-takes it at once
        # would otherwise keep it for every piece
        self._arriving = 0
        self._arrivals = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersLLM:
        return cls(
            model_dir=resolve_model_dir(settings),
            threads=settings.engine_threads,
            prefix_cache_tokens=settings.llm_prefix_cache_tokens,
            device=settings.llm_device,
            dtype=settings.llm_dtype,
        )

    @property
    def adapters(self) -> dict[str, Path]:
        """Resident adapters: name -> folder their weights came from."""
        with self._lock:
            return {name: info.path for name, info in self._adapters.items()}

    # --- generation ---

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        adapter = request.adapter
        with self._arriving_reply():
            if adapter is not None and adapter not in self._adapters:
                raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.name)
            prompt = self._encode(request.messages)
            self._users[adapter or BASE_ADAPTER] += 1
        try:
            yield from self._decode_loop(prompt, request, cancel)
        finally:
            with self._lock:
                self._users[adapter or BASE_ADAPTER] -= 1
                self._lock.notify_all()

    def _decode_loop(
        self, prompt: list[int], request: GenerationRequest, cancel: threading.Event
    ) -> Iterator[str]:
        params = request.params
        if self._max_positions and len(prompt) + params.max_tokens > self._max_positions:
            raise EngineError(
                f"prompt of {len(prompt)} tokens + max_tokens {params.max_tokens} exceeds "
                f"the model's {self._max_positions} positions",
                engine=self.name,
            )
        rng = torch.Generator().manual_seed(
            request.seed if request.seed is not None else random.getrandbits(63)
        )
        processors = _logits_processors(params)
        stops = StopScanner(params.stop)
        ids = torch.tensor([prompt])
        slot = request.adapter or BASE_ADAPTER
        step_ids, past = ids, None
        generated: list[int] = []
        for _ in range(params.max_tokens):
            if cancel.is_set():
                return
            with self._lock:
                # looked up once the model is ours: a prime that was running has
                # stored all it computed by then
                if not generated:
                    reused, kv = self.prefix_cache.lookup(slot, prompt)
                    step_ids, past = ids[:, reused:], self._kv_cache(kv)
                    self._prompt_tokens["reused"] += reused
                    self._prompt_tokens["computed"] += len(prompt) - reused
                logits, past = self._forward(step_ids, ids.shape[1], past, request.adapter)
            if not generated:
                # this request holds its adapter (users count), so no swap can land
                # between the forward and the store
                self.prefix_cache.store(slot, prompt, _kv_of(past))
            if cancel.is_set():
                return
            next_id = _pick(processors(ids, logits), params.temperature, rng)
            if next_id in self._eos:
                break
            generated.append(next_id)
            step_ids = torch.tensor([[next_id]])
            ids = torch.cat([ids, step_ids], dim=1)
            text = self._tokenizer.decode(generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # a multi-byte character is split across tokens: wait for the rest
            delta, stopped = stops.feed(text)
            if delta:
                yield delta
            if stopped:
                return
        if tail := stops.flush():
            yield tail

    @torch.inference_mode()
    def _forward(
        self, step_ids: torch.Tensor, total_len: int, past: Any, adapter: str | None
    ) -> tuple[torch.Tensor, Any]:
        if self._model is not self._base:
            self._wear(adapter)
        out = self._model(
            input_ids=step_ids.to(self._device),
            # all ones, as generate() passes it, so replies match generate() exactly
            attention_mask=torch.ones(1, total_len, dtype=torch.long, device=self._device),
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,
        )
        # sampling and stop checks run on the CPU, one vocabulary row per step
        return out.logits[:, -1, :].float().cpu(), out.past_key_values

    def _wear(self, adapter: str | None) -> None:
        """Make `adapter` (None: none) the one every LoRA layer applies, for one forward.

        Called under the model lock, so no other request's forward can see it. PEFT's
        per-call `adapter_names` does the same with hooks it registers on every module
        each forward, ~30 ms per token on this model (bench/engines.py).
        """
        if self._lora_modules is None:
            from peft.tuners.lora import LoraLayer

            self._lora_modules = [m for m in self._model.modules() if isinstance(m, LoraLayer)]
        active = [adapter] if adapter is not None else []
        for module in self._lora_modules:
            module._active_adapter = active

    def _encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        chat = [{"role": m.role, "content": m.content} for m in messages]
        text = self._tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        # the template already spells out every special token
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_tokens(self) -> dict[str, int]:
        with self._lock:
            return {k: self._prompt_tokens[k] for k in ("reused", "computed")}

    def prime(self, request: GenerationRequest) -> None:
        """Prefill the request's prompt now and keep its KV state for later replies.

        In pieces of `prime_chunk_tokens`, yielding to replies: once any reply is in
        flight, priming stops after its current piece and keeps the prefix computed so
        far (counted in `primes()` as "yielded").
        """
        if self.prefix_cache.max_tokens <= 0:
            return
        adapter = request.adapter
        slot = adapter or BASE_ADAPTER
        with self._lock:
            info = self._adapters.get(adapter) if adapter is not None else None
            if adapter is not None and info is None:
                raise EngineError(f"adapter {adapter!r} is not loaded", engine=self.name)
            prompt = self._encode(request.messages)
        reused, kv = self.prefix_cache.lookup(slot, prompt)
        if reused == len(prompt) - 1:
            return
        ids, past, done = torch.tensor([prompt]), self._kv_cache(kv), reused
        chunk = self.prime_chunk_tokens or len(prompt)
        while done < len(prompt):
            with self._lock:
                if self._arriving or self._users.total():  # replies come first
                    self._primes["yielded"] += 1
                    return
                if adapter is not None and self._adapters.get(adapter) is not info:
                    return  # swapped or unloaded meanwhile: its KV would be stale
                end = min(done + chunk, len(prompt))
                _, past = self._forward(ids[:, done:end], end, past, adapter)
                done = end
                # under the lock, so no swap of the adapter comes between
                self.prefix_cache.store(slot, prompt[:done], _kv_of(past))
        with self._lock:
            self._primes["whole"] += 1

    @contextlib.contextmanager
    def _arriving_reply(self) -> Iterator[None]:
        """The model lock, for a reply that registers: announced first, so a prime
        running in pieces gives the lock up at its next one."""
        with self._arrivals:
            self._arriving += 1
        try:
            with self._lock:
                yield
        finally:
            with self._arrivals:
                self._arriving -= 1

    def primes(self) -> dict[str, int]:
        """Primes that prefilled their whole prompt, and those that yielded to a reply."""
        with self._lock:
            return {k: self._primes[k] for k in ("whole", "yielded")}

    def _kv_cache(self, kv: KV | None) -> Any:
        if kv is None:
            return None
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=kv, config=self._base.config)

    def warmup(self) -> None:
        request = GenerationRequest(
            messages=[ChatMessage("user", "Hello.")],
            params=GenerationParams(temperature=0.0, max_tokens=2),
        )
        for _ in self.generate(request, threading.Event()):
            pass

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
        with self._lock:
            if name in self._adapters:
                self._wait_idle(name)
                if _swappable(self._adapters[name], info):
                    self._hotswap(name, info)
                    return
                self._remove(name)
            self._add(name, info)

    def swap_adapter(self, name: str, path: str | Path) -> None:
        """Replace resident adapter `name`'s weights in place with a new version of it.

        Cheaper than unload + load (no module surgery). The new version must change the
        same layers with the same ranks; requests using `name` finish first.
        """
        info = self.inspect_adapter(path)
        with self._lock:
            current = self._adapters.get(name)
            if current is None:
                raise EngineError(f"adapter {name!r} is not loaded", engine=self.name)
            if not _swappable(current, info):
                raise ConfigError(
                    f"adapter {info.path} cannot replace {name!r} in place: it must change "
                    "the same layers with the same ranks; unload and load it instead"
                )
            self._wait_idle(name)
            self._hotswap(name, info)

    def unload_adapter(self, name: str) -> None:
        with self._lock:
            if name not in self._adapters:
                raise EngineError(f"adapter {name!r} is not loaded", engine=self.name)
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
            key = (path.resolve(), _file_stamp(path))
        except OSError:
            return inspect_adapter(path, self._modules, self._linears)  # explains what is missing
        with self._lock:
            info = self._inspected.get(key)
        if info is None:
            info, tensors = read_adapter(path, self._modules, self._linears)
            with self._lock:
                if len(self._inspected) >= 256:
                    self._inspected.clear()
                self._inspected[key] = info
                self._staged[info.path] = (key, tensors)
                self._staged.move_to_end(info.path)
                while len(self._staged) > STAGED_ADAPTERS:
                    self._staged.popitem(last=False)
        return info

    def _add(self, name: str, info: AdapterInfo) -> None:
        from peft import PeftModel

        self._lora_layers = self._lora_modules = None  # a failed load may have wrapped some
        try:
            if self._model is self._base:
                self._model = PeftModel.from_pretrained(
                    self._base, str(info.path), adapter_name=name, is_trainable=False
                )
            else:
                self._model.load_adapter(str(info.path), adapter_name=name, is_trainable=False)
        except (ValueError, RuntimeError, KeyError, OSError) as exc:
            if self._model is not self._base and name in self._model.peft_config:
                self._model.delete_adapter(name)
            raise ConfigError(f"adapter {info.path}: PEFT could not load it: {exc}") from exc
        self._model.eval()
        self._adapters[name] = info
        self._lora_layers = self._lora_modules = None
        self.prefix_cache.drop_adapter(name)

    def _hotswap(self, name: str, info: AdapterInfo) -> None:
        """Copy a new version's weights into resident adapter `name`'s tensors.

        What PEFT's `hotswap_adapter` does, without its per-call name matching and checks
        (~25 ms whatever the rank, against 1-4 ms for the copy: bench/adapter_switch.py):
        the folder is already validated, shapes and configs checked equal, and replies
        wearing `name` have finished. Per-module alpha or rank patterns go through
        PEFT's own hotswap.
        """
        import math

        from safetensors.torch import load_file

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
                    torch_device=str(self._base.device),
                )
            else:
                staged = self._staged.get(info.path)
                if staged is not None and staged[0] == (info.path, _file_stamp(info.path)):
                    tensors = staged[1]
                else:
                    tensors = load_file(str(info.path / WEIGHTS_FILE))
                if self._lora_layers is None:  # module surgery since the last swap
                    self._lora_layers = dict(self._model.base_model.model.named_modules())
                with torch.no_grad():
                    for key, tensor in tensors.items():
                        match = _LORA_KEY.match(key)
                        assert match is not None  # inspect_adapter refused anything else
                        layer = self._lora_layers[match["module"]]
                        getattr(layer, match["part"])[name].weight.copy_(tensor)
                        rank = layer.r[name]
                        root = math.sqrt(rank) if config.use_rslora else rank
                        layer.scaling[name] = config.lora_alpha / root
        except (ValueError, RuntimeError, KeyError, OSError) as exc:
            raise ConfigError(f"adapter {info.path}: cannot swap into {name!r}: {exc}") from exc
        finally:
            self.prefix_cache.drop_adapter(name)  # even a failed copy may have written some
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
        self.prefix_cache.drop_adapter(name)

    def _wait_idle(self, name: str) -> None:
        """Let replies that wear `name` finish (the lock is released while waiting)."""
        if not self._lock.wait_for(lambda: self._users[name] == 0, self._busy_timeout_s):
            raise EngineError(
                f"adapter {name!r} is still in use after {self._busy_timeout_s:.0f} s",
                engine=self.name,
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


def _kv_of(past: Any) -> KV:
    return tuple((layer.keys, layer.values) for layer in past.layers)


def _file_stamp(folder: Path) -> tuple[int, ...]:
    stamp: list[int] = []
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        st = (folder / name).stat()
        stamp += [st.st_size, st.st_mtime_ns, st.st_ino]
    return tuple(stamp)


def _swappable(current: AdapterInfo, new: AdapterInfo) -> bool:
    """Whether `new` can be copied into `current`'s tensors (what PEFT's hotswap needs)."""
    from peft.utils.hotswap import check_hotswap_configs_compatible

    if current.shapes != new.shapes:
        return False
    try:
        check_hotswap_configs_compatible(current.config, new.config)
    except ValueError:
        return False
    return True


def inspect_adapter(
    path: Path, modules: Sequence[str], linears: dict[str, tuple[int, int]]
) -> AdapterInfo:
    """Check a LoRA folder against a model's layer names and linear shapes."""
    return read_adapter(path, modules, linears)[0]


def read_adapter(
    path: Path, modules: Sequence[str], linears: dict[str, tuple[int, int]]
) -> tuple[AdapterInfo, dict[str, torch.Tensor]]:
    """inspect_adapter, also handing back the weights it read."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_dir():
        raise ConfigError(f"adapter folder {path} does not exist")
    if not (path / WEIGHTS_FILE).is_file():
        hint = (
            " (pickle .bin weights are not loaded)" if (path / "adapter_model.bin").exists() else ""
        )
        raise ConfigError(f"adapter {path}: missing {WEIGHTS_FILE}{hint}")
    try:
        raw = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise ConfigError(f"adapter {path}: missing {CONFIG_FILE}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"adapter {path}: unreadable {CONFIG_FILE}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("peft_type") != "LORA":
        raise ConfigError(f"adapter {path}: not a LoRA adapter (peft_type must be 'LORA')")
    try:
        config = LoraConfig.from_pretrained(str(path))
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"adapter {path}: invalid {CONFIG_FILE}: {exc}") from exc
    if config.use_dora:
        raise ConfigError(f"adapter {path}: DoRA adapters cannot be mixed per request")

    targeted = {n for n in modules if check_target_module_exists(config, n)}
    if not targeted:
        raise ConfigError(
            f"adapter {path}: target modules {_show(config.target_modules)} match no layer "
            f"of this model (its linear layers: {_show({n.rsplit('.', 1)[-1] for n in linears})})"
        )
    if not_linear := sorted(targeted - linears.keys()):
        raise ConfigError(f"adapter {path}: only linear layers are supported, not {not_linear[0]}")

    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"adapter {path}: corrupt {WEIGHTS_FILE}: {exc}") from exc
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise ConfigError(f"adapter {path}: unexpected tensor {key!r}")
        parts.setdefault(match["module"], {})[match["part"]] = tensor

    shapes: dict[str, tuple[int, int, int]] = {}
    for module, ab in sorted(parts.items()):
        if module not in linears:
            raise ConfigError(f"adapter {path}: this model has no linear layer {module!r}")
        if set(ab) != {"lora_A", "lora_B"}:
            raise ConfigError(f"adapter {path}: {module} lacks lora_A or lora_B weights")
        a, b = ab["lora_A"], ab["lora_B"]
        in_f, out_f = linears[module]
        if (
            a.ndim != 2
            or b.ndim != 2
            or a.shape[1] != in_f
            or b.shape[0] != out_f
            or a.shape[0] != b.shape[1]
        ):
            raise ConfigError(
                f"adapter {path}: {module} is {in_f}->{out_f} in this model but the adapter "
                f"has lora_A {tuple(a.shape)}, lora_B {tuple(b.shape)}: trained for another base"
            )
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise ConfigError(f"adapter {path}: {module} has NaN or infinite weights")
        shapes[module] = (a.shape[0], in_f, out_f)
    if missing := sorted(targeted - shapes.keys()):
        raise ConfigError(
            f"adapter {path}: no weights for {len(missing)} targeted layers "
            f"(e.g. {missing[0]}): incomplete file or wrong target_modules"
        )
    if extra := sorted(shapes.keys() - targeted):
        raise ConfigError(f"adapter {path}: weights for {extra[0]}, which target_modules excludes")
    return AdapterInfo(path=path.resolve(), config=config, shapes=shapes), tensors


class StopScanner:
    """Turns the growing decoded text into deltas that never contain a stop string.

    Text that could be the start of a stop string is held back until the next tokens
    show whether it is one.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._text = ""
        self._sent = 0

    def feed(self, text: str) -> tuple[str, bool]:
        """(delta to emit, whether a stop string was reached) for the text so far."""
        self._text = text
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            return self._emit(min(hits)), True
        hold = max((_overlap(text, s) for s in self._stops), default=0)
        return self._emit(len(text) - hold), False

    def flush(self) -> str:
        """The held-back rest, once generation ended without completing a stop string."""
        return self._emit(len(self._text))

    def _emit(self, end: int) -> str:
        delta = self._text[self._sent : end] if end > self._sent else ""
        self._sent = max(self._sent, end)
        return delta


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper start of `stop`."""
    for k in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:k]):
            return k
    return 0


def _logits_processors(params: GenerationParams) -> Any:
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    # the same processors, in the same order, as generate() builds for these settings
    procs = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature > 0:
        if params.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
    return procs


def _pick(scores: torch.Tensor, temperature: float, rng: torch.Generator) -> int:
    if temperature == 0:
        return int(scores[0].argmax())
    probs = torch.softmax(scores[0], dim=-1)
    return int(torch.multinomial(probs, 1, generator=rng))


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return frozenset(ids)


def _show(names: Any) -> str:
    if isinstance(names, str):
        return repr(names)
    return ", ".join(sorted(names or ()))
