"""The PEFT -> GGUF LoRA converter on a tiny hand-made adapter (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from personae.daemon.adapters.gguf import BaseInfo, converted
from personae.daemon.errors import ConfigError

BASE = BaseInfo(arch="llama", n_layers=2, n_head=4, n_head_kv=2, fingerprint="t")
HIDDEN, KV, RANK = 16, 8, 2


def adapter(tmp_path: Path, **config) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    tensors = {}
    for layer in range(2):
        for module, out in (("q_proj", HIDDEN), ("k_proj", KV), ("v_proj", KV)):
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = rng.standard_normal((RANK, HIDDEN)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.standard_normal((out, RANK)).astype(np.float32)
    tmp_path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp_path / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": RANK, "lora_alpha": 4, **config}
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg))
    return tmp_path, tensors


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    fields = {}
    for key in ("general.type", "adapter.type", "adapter.lora.alpha", "general.architecture"):
        field = reader.fields[key]
        part = field.parts[field.data[0]]
        fields[key] = bytes(part).decode() if part.dtype == np.uint8 else float(part[0])
    return tensors, fields


def unpermute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of llama.cpp's q/k row order (what transformers' GGUF loader applies)."""
    out = rows.shape[0]
    return (
        rows.reshape(n_head, out // n_head // 2, 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def test_names_metadata_scaling_and_rope_order(tmp_path):
    src, tensors = adapter(tmp_path / "a")
    out = converted(src, BASE, tmp_path / "cache")
    got, fields = read(out)
    assert fields == {
        "general.type": "adapter",
        "adapter.type": "lora",
        "adapter.lora.alpha": 0.0,  # the scale is folded into B
        "general.architecture": "llama",
    }
    assert set(got) == {
        f"blk.{i}.attn_{m}.weight.lora_{p}" for i in range(2) for m in "qkv" for p in "ab"
    }
    key = "base_model.model.model.layers.1.self_attn.{}.lora_{}.weight"
    scale = 4 / RANK
    np.testing.assert_allclose(
        got["blk.1.attn_v.weight.lora_a"], tensors[key.format("v_proj", "A")]
    )
    np.testing.assert_allclose(
        got["blk.1.attn_v.weight.lora_b"], tensors[key.format("v_proj", "B")] * scale
    )
    # q and k rows are in llama.cpp's rotary order: undoing it gives PEFT's B back
    q = unpermute(got["blk.1.attn_q.weight.lora_b"], BASE.n_head)
    k = unpermute(got["blk.1.attn_k.weight.lora_b"], BASE.n_head_kv)
    np.testing.assert_allclose(q, tensors[key.format("q_proj", "B")] * scale, rtol=1e-6)
    np.testing.assert_allclose(k, tensors[key.format("k_proj", "B")] * scale, rtol=1e-6)
    assert not np.allclose(got["blk.1.attn_q.weight.lora_b"], q)


def test_rslora_and_alpha_pattern_fold_into_b(tmp_path):
    src, tensors = adapter(tmp_path / "a", use_rslora=True, alpha_pattern={"v_proj": 8})
    got, _ = read(converted(src, BASE, tmp_path / "cache"))
    b = tensors["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]
    np.testing.assert_allclose(got["blk.0.attn_v.weight.lora_b"], b * 8 / np.sqrt(RANK), rtol=1e-6)


def test_cached_by_content(tmp_path):
    src, _ = adapter(tmp_path / "a")
    first = converted(src, BASE, tmp_path / "cache")
    assert converted(src, BASE, tmp_path / "cache") == first
    config = json.loads((src / "adapter_config.json").read_text())
    (src / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 8}))
    assert converted(src, BASE, tmp_path / "cache") != first
    assert not list((tmp_path / "cache").glob(".lora-*"))  # no temporary files left


@pytest.mark.parametrize(
    ("config", "message"),
    [({"peft_type": "IA3"}, "not a LoRA"), ({"use_dora": True}, "DoRA")],
)
def test_refuses_what_llama_cpp_cannot_run(tmp_path, config, message):
    src, _ = adapter(tmp_path / "a", **config)
    with pytest.raises(ConfigError, match=message):
        converted(src, BASE, tmp_path / "cache")
