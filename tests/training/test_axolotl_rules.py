"""The Axolotl export against Axolotl's own config validation rules.

`axolotl` (0.19.0 installs on the CPU, but pins its own transformers and peft, so it
cannot share this environment; its `validate_config` accepted both exports when run
apart, see docs/training.md): its validators (axolotl/utils/schemas/validation.py,
`AxolotlInputConfig`'s model validators) are restated here for the keys the export
writes, with Axolotl's messages; the last rule is transformers' (Axolotl passes
`load_best_model_at_end` to its Trainer, which wants eval_steps to divide save_steps).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from personae.training.export import export_axolotl
from personae.training.recipe import LoraConfigSection, TrainConfig


def axolotl_errors(cfg: dict) -> list[str]:
    errors = []
    if cfg.get("early_stopping_patience"):
        if not cfg.get("save_steps") or not cfg.get("eval_steps"):
            errors.append(
                "`early_stopping_patience` requires save_steps and eval_steps to be set. "
                "eval_steps should evenly divide save_steps."
            )
        elif cfg["save_steps"] % cfg["eval_steps"] != 0:
            errors.append(
                "`early_stopping_patience` requires that eval_steps should evenly divide save_steps."
            )
    if cfg.get("adapter") == "qlora":
        if not cfg.get("load_in_4bit"):
            errors.append("Require cfg.load_in_4bit to be True for qlora")
        if cfg.get("load_in_8bit"):
            errors.append("Can't load qlora in 8bit")
    if cfg.get("eval_steps") and cfg.get("evals_per_epoch"):
        errors.append(
            "eval_steps and evals_per_epoch are mutually exclusive and cannot be used together."
        )
    if cfg.get("save_steps") and cfg.get("saves_per_epoch"):
        errors.append(
            "save_steps and saves_per_epoch are mutually exclusive and cannot be used together."
        )
    if cfg.get("warmup_steps") and cfg.get("warmup_ratio"):
        errors.append("warmup_steps and warmup_ratio are mutually exclusive")
    if cfg.get("test_datasets") and cfg.get("val_set_size"):
        errors.append("non-zero val_set_size should not be used with test_datasets configuration")
    if cfg.get("load_best_model_at_end") and (
        not cfg.get("save_steps")
        or not cfg.get("eval_steps")
        or cfg["save_steps"] % cfg["eval_steps"] != 0
    ):
        errors.append(
            "--load_best_model_at_end requires the saving steps to be a multiple of the evaluation steps"
        )
    return errors


def test_the_rules_catch_the_config_the_issue_reported() -> None:
    assert axolotl_errors({"eval_steps": 10, "early_stopping_patience": 3})
    assert axolotl_errors({"eval_steps": 10, "save_steps": 15, "early_stopping_patience": 3})
    assert axolotl_errors({"adapter": "qlora", "load_in_4bit": False})


@pytest.mark.parametrize("quantization", ["none", "nf4"])
@pytest.mark.parametrize("eval_steps", [1, 7, 10])
def test_the_export_passes_axolotl_validation(
    tmp_path: Path, quantization: str, eval_steps: int
) -> None:
    row = (
        '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}\n'
    )
    (tmp_path / "train.jsonl").write_text(row)
    (tmp_path / "val.jsonl").write_text(row)
    path = export_axolotl(
        tmp_path / "ax",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        train_file=tmp_path / "train.jsonl",
        val_file=tmp_path / "val.jsonl",
        lora=LoraConfigSection(quantization=quantization),
        train=TrainConfig(eval_steps=eval_steps),
    )
    cfg = yaml.safe_load(path.read_text())
    assert axolotl_errors(cfg) == []
    assert cfg["early_stopping_patience"] == TrainConfig().early_stopping_patience
