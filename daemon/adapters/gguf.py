"""PEFT LoRA folder -> GGUF LoRA adapter that llama.cpp loads beside the GGUF base.

The project's own converter (llama.cpp's `convert_lora_to_gguf.py` needs the base's
HF config and a llama.cpp checkout). It writes with the `gguf` package:

- tensor names follow the base GGUF (`model.layers.3.self_attn.q_proj` ->
  `blk.3.attn_q.weight.lora_a` / `.lora_b`), mapped by gguf's own name table;
- llama.cpp stores q and k rows in its rotary layout; the GGUF base's q_proj/k_proj were
  permuted that way when it was made (transformers undoes it when it dequantizes), so a
  LoRA B for q/k gets the same row permutation, or the adapter would rotate the wrong
  dimensions;
- PEFT's scaling (lora_alpha / r, or / sqrt(r) for rsLoRA, per-module alpha and rank
  patterns) is folded into B and the file's alpha is 0, which llama.cpp reads as
  "scale 1": one rule for every PEFT variant.

Conversion is cached by content: `<cache>/<sha256 of the adapter files + base + version>.gguf`,
written to a temporary name and renamed, so concurrent converters never see half a file.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from personae.daemon.adapters.files import (
    AdapterFileError,
    content_digest,
    read_config,
    read_lora,
)
from personae.daemon.errors import ConfigError

#: bump when the output changes, so cached conversions are redone
VERSION = 1
#: architectures whose GGUF q/k rows llama.cpp's converter permutes (Llama-style RoPE);
#: NeoX-style models (Qwen, Phi, ...) keep HF's row order
PERMUTED_QK = frozenset({"llama"})


@dataclass(frozen=True, slots=True)
class BaseInfo:
    """What the converter needs to know about the GGUF base."""

    arch: str
    n_layers: int
    n_head: int
    n_head_kv: int
    #: the base file's identity, part of the cache key
    fingerprint: str

    @classmethod
    def read(cls, gguf_file: Path) -> BaseInfo:
        from gguf import GGUFReader

        reader = GGUFReader(str(gguf_file))

        def value(key: str):
            field = reader.fields.get(key)
            if field is None:
                raise ConfigError(f"{gguf_file.name}: no {key} in the GGUF header")
            part = field.parts[field.data[0]]
            return bytes(part).decode() if part.dtype == np.uint8 else int(part[0])

        arch = value("general.architecture")
        stat = gguf_file.stat()
        return cls(
            arch=arch,
            n_layers=value(f"{arch}.block_count"),
            n_head=value(f"{arch}.attention.head_count"),
            n_head_kv=value(f"{arch}.attention.head_count_kv"),
            fingerprint=f"{gguf_file.name}:{stat.st_size}:{stat.st_mtime_ns}",
        )


def adapter_digest(adapter_dir: Path, base: BaseInfo) -> str:
    """Content hash of what a conversion depends on."""
    return content_digest(adapter_dir, f"personae-gguf-lora:{VERSION}:{base.fingerprint}")


def converted(adapter_dir: str | Path, base: BaseInfo, cache_dir: Path) -> Path:
    """The GGUF for `adapter_dir`, converted once and then taken from `cache_dir`."""
    adapter_dir = Path(adapter_dir)
    target = cache_dir / f"{adapter_digest(adapter_dir, base)[:32]}.gguf"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lora-", suffix=".gguf", dir=cache_dir)
    os.close(fd)
    try:
        convert(adapter_dir, base, Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def convert(adapter_dir: Path, base: BaseInfo, out: Path) -> None:
    """Write `adapter_dir`'s LoRA as a GGUF adapter for `base` to `out`."""
    import gguf

    config = read_config(adapter_dir)
    if config.get("use_dora"):
        raise AdapterFileError(
            f"adapter {adapter_dir}: DoRA adapters are not supported by llama.cpp"
        )
    pairs = read_lora(adapter_dir, framework="numpy", named_keys=True)

    try:
        arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == base.arch)
    except StopIteration:
        raise ConfigError(f"the GGUF base's architecture {base.arch!r} is unknown") from None
    names = gguf.get_tensor_name_map(arch, base.n_layers)
    writer = gguf.GGUFWriter(str(out), arch=base.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # 0: scale folded into B
    for module, (lora_a, lora_b) in pairs.items():
        gguf_name = names.get_name(module)
        if gguf_name is None:
            raise ConfigError(f"adapter {adapter_dir}: no {base.arch} tensor for {module!r}")
        a = lora_a.astype(np.float32)
        b = lora_b.astype(np.float32) * _scaling(config, module, a.shape[0])
        if base.arch in PERMUTED_QK and module.endswith("q_proj"):
            b = _rope_permute(b, base.n_head)
        elif base.arch in PERMUTED_QK and module.endswith("k_proj"):
            b = _rope_permute(b, base.n_head_kv)
        # numpy (r, in) and (out, r) are ggml's ne [in, r] and [r, out]: what llama.cpp wants
        writer.add_tensor(f"{gguf_name}.weight.lora_a", np.ascontiguousarray(a))
        writer.add_tensor(f"{gguf_name}.weight.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _scaling(config: dict, module: str, rank: int) -> float:
    """PEFT's multiplier for `module`: alpha / r, or alpha / sqrt(r) with rsLoRA."""
    alpha = float(config.get("lora_alpha", 8))
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.search(rf"(^|\.){pattern}$", module):
            alpha = float(value)
    return alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def _rope_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """The row order llama.cpp's converter gives q/k weights (HF rotary halves -> pairs)."""
    out = rows.shape[0]
    return (
        rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )
