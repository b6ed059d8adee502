"""Adapter files: find the weights of a PEFT adapter folder, check and hash them."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from personae.daemon.runtime.errors import AdapterIntegrityError

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def adapter_weights_file(path: Path) -> Path:
    """The weights file of a PEFT adapter folder (or `path` itself if it is a file)."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise AdapterIntegrityError(f"adapter folder {path} has no {' or '.join(WEIGHT_FILES)}")
    raise AdapterIntegrityError(f"adapter {path} does not exist")


def adapter_sha256(path: Path) -> str:
    """sha256 of the adapter's weights file, after checking the file is well formed."""
    weights = adapter_weights_file(path)
    check_adapter_file(weights)
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_adapter_file(weights: Path) -> None:
    """Cheap structural checks: a safetensors header that parses and fits the file, and
    a parseable `adapter_config.json` beside it. Raises AdapterIntegrityError."""
    size = weights.stat().st_size
    if weights.suffix == ".safetensors":
        with weights.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise AdapterIntegrityError(f"{weights}: truncated safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 << 20:
                raise AdapterIntegrityError(f"{weights}: corrupt safetensors header")
            try:
                header = json.loads(f.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise AdapterIntegrityError(f"{weights}: corrupt safetensors header") from exc
        if not isinstance(header, dict):
            raise AdapterIntegrityError(f"{weights}: corrupt safetensors header")
        end = max(
            (
                int(v["data_offsets"][1])
                for k, v in header.items()
                if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
            ),
            default=0,
        )
        if 8 + n + end > size:
            raise AdapterIntegrityError(f"{weights}: truncated (tensors end past the file)")
    elif size == 0:
        raise AdapterIntegrityError(f"{weights}: empty file")
    config = weights.parent / "adapter_config.json"
    if config.exists():
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AdapterIntegrityError(f"{config}: not valid JSON: {exc}") from exc
