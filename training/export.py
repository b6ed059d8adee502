"""Exports: an Axolotl config with its dataset, hosted fine-tuning JSONL, a merged model."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml

from personae.training.recipe import LoraConfigSection, TrainConfig
from personae.training.rundir import read_jsonl, write_atomic, write_jsonl

_ROLES = {"system", "user", "assistant"}


def export_axolotl(
    out: Path,
    *,
    base_model: str,
    train_file: Path,
    val_file: Path,
    lora: LoraConfigSection,
    train: TrainConfig,
) -> Path:
    """`out/config.yml` plus the dataset files it names (chat_template format)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(train_file, out / "train.jsonl")
    shutil.copy2(val_file, out / "val.jsonl")
    dataset = {
        "type": "chat_template",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": ["assistant"],
    }
    config: dict[str, Any] = {
        "base_model": base_model,
        "chat_template": "chatml",
        "datasets": [{"path": "train.jsonl", "ds_type": "json", **copy.deepcopy(dataset)}],
        "test_datasets": [
            {"path": "val.jsonl", "ds_type": "json", "split": "train", **copy.deepcopy(dataset)}
        ],
        "dataset_prepared_path": "prepared",
        "output_dir": "adapter",
        "adapter": "qlora" if lora.quantization == "nf4" else "lora",
        "load_in_4bit": lora.quantization == "nf4",
        "lora_r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "lora_target_modules": list(lora.target_modules),
        "sequence_len": train.max_length,
        "sample_packing": train.packing,
        "micro_batch_size": train.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "num_epochs": train.epochs,
        "learning_rate": train.learning_rate,
        "lr_scheduler": "cosine",
        "optimizer": "adamw_torch",
        "warmup_ratio": train.warmup_ratio,
        "eval_steps": train.eval_steps,
        # Axolotl refuses early stopping without save_steps, and with save_steps that
        # eval_steps does not divide; the best checkpoint is the one kept
        "save_steps": train.eval_steps,
        "early_stopping_patience": train.early_stopping_patience,
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss",
        "save_total_limit": 2,
        "seed": train.seed,
    }
    if train.max_steps > 0:
        config["max_steps"] = train.max_steps
    write_atomic(out / "config.yml", yaml.safe_dump(config, sort_keys=False))
    return out / "config.yml"


def export_hosted(out: Path, *, train_file: Path, val_file: Path) -> list[Path]:
    """`{"messages": [...]}` with only role and content, as hosted fine-tuning APIs take."""
    paths = []
    for name, src in (("train.jsonl", train_file), ("validation.jsonl", val_file)):
        rows = []
        for i, row in enumerate(read_jsonl(src)):
            msgs = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
            if (
                not msgs
                or msgs[-1]["role"] != "assistant"
                or any(m["role"] not in _ROLES for m in msgs)
            ):
                raise ValueError(f"{src}:{i + 1}: a row must end with an assistant message")
            rows.append({"messages": msgs})
        write_jsonl(out / name, rows)
        paths.append(out / name)
    return paths


def export_merged(out: Path, *, base_dir: Path, adapter_dir: Path) -> Path:
    """The base with the adapter merged in (`merge_and_unload`): a standalone model folder."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from personae.training.base import load_tokenizer

    base = AutoModelForCausalLM.from_pretrained(str(base_dir))
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    merged.save_pretrained(str(tmp))
    load_tokenizer(base_dir).save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
