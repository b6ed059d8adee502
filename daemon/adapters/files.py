"""PEFT LoRA adapter folders: the file names, the one reader, the one validator, the hashes.

    <folder>/adapter_config.json          PEFT's LoraConfig, as JSON
    <folder>/adapter_model.safetensors    base_model.model.<module>.lora_A/lora_B.weight

Three depths of checking, cheapest first, each raising `AdapterFileError` (a
ConfigError) that names the folder and what is wrong:

- `check_integrity`: the weights file is well formed and the config parses (no
  torch; what the registry checks before it hashes or deploys);
- `read_config` / `read_lora`: the config is a LoRA one and every tensor is half of a
  lora_A/lora_B pair (what the GGUF converter needs);
- `validate`: all of that against one model's layers: targets, shapes, ranks, finite
  weights (what the transformers engine and the training package need before a load).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from personae.daemon.errors import ConfigError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
#: pickle weights: found and hashed by the registry, never loaded
PICKLE_WEIGHTS_FILE = "adapter_model.bin"
WEIGHT_FILES = (WEIGHTS_FILE, PICKLE_WEIGHTS_FILE)
#: PEFT saves without the adapter's name; raw state dicts carry it (`lora_A.default.weight`)
_LORA_KEY = re.compile(
    r"^base_model\.model\.(?P<module>.+)\.(?P<part>lora_A|lora_B)(?:\.(?P<name>[^.]+))?\.weight$"
)


class AdapterFileError(ConfigError):
    """An adapter folder that is missing, malformed, or does not fit the model."""


def is_adapter_dir(path: Path) -> bool:
    """Whether `path` looks like a PEFT adapter folder (it has a config)."""
    return (path / CONFIG_FILE).is_file()


# --- integrity and hashes (no torch) ---


def weights_file(path: Path) -> Path:
    """The weights file of a PEFT adapter folder (or `path` itself if it is a file)."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise AdapterFileError(f"adapter folder {path} has no {' or '.join(WEIGHT_FILES)}")
    raise AdapterFileError(f"adapter {path} does not exist")


def weights_sha256(path: Path) -> str:
    """sha256 of the adapter's weights file, after checking the file is well formed."""
    weights = weights_file(path)
    check_integrity(weights)
    digest = hashlib.sha256()
    _update(digest, weights)
    return digest.hexdigest()


def content_digest(folder: Path, salt: str) -> str:
    """sha256 of `salt`, the config and the safetensors weights: what a conversion reads."""
    digest = hashlib.sha256(salt.encode())
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        path = folder / name
        if not path.is_file():
            raise AdapterFileError(f"adapter {folder}: missing {name}")
        digest.update(name.encode())
        _update(digest, path)
    return digest.hexdigest()


def file_stamp(folder: Path) -> tuple[int, ...]:
    """Size, mtime and inode of the config and weights: equal stamps, unchanged files."""
    stamp: list[int] = []
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        st = (folder / name).stat()
        stamp += [st.st_size, st.st_mtime_ns, st.st_ino]
    return tuple(stamp)


def check_integrity(weights: Path) -> None:
    """Cheap structural checks: a safetensors header that parses and fits the file, and
    a parseable config beside it."""
    size = weights.stat().st_size
    if weights.suffix == ".safetensors":
        with weights.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise AdapterFileError(f"{weights}: truncated safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 << 20:
                raise AdapterFileError(f"{weights}: corrupt safetensors header")
            try:
                header = json.loads(f.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise AdapterFileError(f"{weights}: corrupt safetensors header") from exc
        if not isinstance(header, dict):
            raise AdapterFileError(f"{weights}: corrupt safetensors header")
        end = max(
            (
                int(v["data_offsets"][1])
                for k, v in header.items()
                if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
            ),
            default=0,
        )
        if 8 + n + end > size:
            raise AdapterFileError(f"{weights}: truncated (tensors end past the file)")
    elif size == 0:
        raise AdapterFileError(f"{weights}: empty file")
    config = weights.parent / CONFIG_FILE
    if config.exists():
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AdapterFileError(f"{config}: not valid JSON: {exc}") from exc


def _update(digest: Any, path: Path) -> None:
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)


# --- the reader ---


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's config as JSON, checked to be a LoRA one."""
    try:
        raw = json.loads((folder / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise AdapterFileError(f"adapter {folder}: missing {CONFIG_FILE}") from None
    except (OSError, ValueError) as exc:
        raise AdapterFileError(f"adapter {folder}: unreadable {CONFIG_FILE}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("peft_type") != "LORA":
        raise AdapterFileError(f"adapter {folder}: not a LoRA adapter (peft_type must be 'LORA')")
    return raw


#: base module name -> (lora_A, lora_B), torch tensors or numpy arrays
LoraPairs = dict[str, tuple[Any, Any]]


def read_lora(
    folder: Path,
    *,
    framework: Literal["pt", "numpy"] = "pt",
    named_keys: bool = False,
) -> LoraPairs:
    """The LoRA tensors of `folder` (torch or numpy), paired by the module they change.

    `named_keys` also takes keys that carry an adapter name (`lora_A.default.weight`),
    which a PEFT load would not place, so only converters that pair by module take them.
    """
    from safetensors import SafetensorError

    if framework == "pt":
        from safetensors.torch import load_file
    else:
        from safetensors.numpy import load_file
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        hint = (
            " (pickle .bin weights are not loaded)"
            if (folder / PICKLE_WEIGHTS_FILE).exists()
            else ""
        )
        raise AdapterFileError(f"adapter {folder}: missing {WEIGHTS_FILE}{hint}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise AdapterFileError(f"adapter {folder}: corrupt {WEIGHTS_FILE}: {exc}") from exc
    parts: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        match = _LORA_KEY.match(key)
        if match is None or (match["name"] is not None and not named_keys):
            raise AdapterFileError(f"adapter {folder}: unexpected tensor {key!r}")
        parts.setdefault(match["module"], {})[match["part"]] = tensor
    pairs: LoraPairs = {}
    for module, ab in sorted(parts.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            raise AdapterFileError(f"adapter {folder}: {module} lacks lora_A or lora_B weights")
        pairs[module] = (ab["lora_A"], ab["lora_B"])
    return pairs


# --- the validator ---


@dataclass(frozen=True)
class ModelLayers:
    """What an adapter is checked against: a plain (un-PEFT-wrapped) model's layers."""

    #: every named module
    modules: tuple[str, ...]
    #: linear module name -> (in_features, out_features)
    linears: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, model: Any) -> ModelLayers:
        import torch

        return cls(
            modules=tuple(n for n, _ in model.named_modules() if n),
            linears={
                n: (m.in_features, m.out_features)
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear)
            },
        )


@dataclass(frozen=True)
class AdapterInfo:
    """A validated adapter folder: what it changes in the model and how."""

    path: Path
    config: Any  # peft.LoraConfig
    #: base module name -> (rank, in_features, out_features)
    shapes: dict[str, tuple[int, int, int]]

    @property
    def ranks(self) -> list[int]:
        return sorted({r for r, _, _ in self.shapes.values()})


def validate(folder: Path, layers: ModelLayers) -> tuple[AdapterInfo, LoraPairs]:
    """Check a LoRA folder against a model's layers; the info and the (torch) weights read.

    Refuses what the transformers engine cannot wear per request: other PEFT types,
    DoRA, targets that are not linear layers of this model, shapes of another base,
    missing or extra layers, NaN or infinite weights.
    """
    import torch
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    if not folder.is_dir():
        raise AdapterFileError(f"adapter folder {folder} does not exist")
    if not (folder / WEIGHTS_FILE).is_file():
        read_lora(folder)  # explains what is missing
    read_config(folder)
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (ValueError, TypeError, KeyError) as exc:
        raise AdapterFileError(f"adapter {folder}: invalid {CONFIG_FILE}: {exc}") from exc
    if config.use_dora:
        raise AdapterFileError(f"adapter {folder}: DoRA adapters cannot be mixed per request")

    linears = layers.linears
    targeted = {n for n in layers.modules if check_target_module_exists(config, n)}
    if not targeted:
        raise AdapterFileError(
            f"adapter {folder}: target modules {_show(config.target_modules)} match no layer "
            f"of this model (its linear layers: {_show({n.rsplit('.', 1)[-1] for n in linears})})"
        )
    if not_linear := sorted(targeted - linears.keys()):
        raise AdapterFileError(
            f"adapter {folder}: only linear layers are supported, not {not_linear[0]}"
        )

    weights = read_lora(folder)
    shapes: dict[str, tuple[int, int, int]] = {}
    for module, (a, b) in weights.items():
        if module not in linears:
            raise AdapterFileError(f"adapter {folder}: this model has no linear layer {module!r}")
        in_f, out_f = linears[module]
        if (
            a.ndim != 2
            or b.ndim != 2
            or a.shape[1] != in_f
            or b.shape[0] != out_f
            or a.shape[0] != b.shape[1]
        ):
            raise AdapterFileError(
                f"adapter {folder}: {module} is {in_f}->{out_f} in this model but the adapter "
                f"has lora_A {tuple(a.shape)}, lora_B {tuple(b.shape)}: trained for another base"
            )
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise AdapterFileError(f"adapter {folder}: {module} has NaN or infinite weights")
        shapes[module] = (a.shape[0], in_f, out_f)
    if missing := sorted(targeted - shapes.keys()):
        raise AdapterFileError(
            f"adapter {folder}: no weights for {len(missing)} targeted layers "
            f"(e.g. {missing[0]}): incomplete file or wrong target_modules"
        )
    if extra := sorted(shapes.keys() - targeted):
        raise AdapterFileError(
            f"adapter {folder}: weights for {extra[0]}, which target_modules excludes"
        )
    return AdapterInfo(path=folder.resolve(), config=config, shapes=shapes), weights


def swappable(current: AdapterInfo, new: AdapterInfo) -> bool:
    """Whether `new` can be copied into `current`'s tensors (what PEFT's hotswap needs)."""
    from peft.utils.hotswap import check_hotswap_configs_compatible

    if current.shapes != new.shapes:
        return False
    try:
        check_hotswap_configs_compatible(current.config, new.config)
    except ValueError:
        return False
    return True


def _show(names: str | Iterable[str] | None) -> str:
    if isinstance(names, str):
        return repr(names)
    return ", ".join(sorted(names or ()))
