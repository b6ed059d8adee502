"""QLoRA (4-bit NF4 through bitsandbytes): runs on the lent GPU machine only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.training.fit import fit_adapter
from personae.training.recipe import LoraConfigSection, TrainConfig

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.models,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs CUDA"),
]


def test_qlora_short_run(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from personae.training.base import resolve_base

    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are Bram."},
                {"role": "user", "content": f"Q{i}?"},
                {"role": "assistant", "content": "Iron doesn't lie."},
            ]
        }
        for i in range(8)
    ]
    for name in ("train.jsonl", "val.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = fit_adapter(
        base_dir=resolve_base(None),
        train_file=tmp_path / "train.jsonl",
        val_file=tmp_path / "val.jsonl",
        out_dir=tmp_path / "fit",
        lora=LoraConfigSection(r=8, quantization="nf4"),
        train=TrainConfig(max_steps=2, batch_size=4, eval_steps=2, max_length=64),
        show_progress=False,
    )
    assert result.metrics["device"] == "cuda" and result.metrics["steps"] == 2
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
