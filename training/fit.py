"""Training one character's adapter: TRL `SFTTrainer` with LoRA (CPU) or QLoRA (CUDA).

Checkpoints go to `<run>/fit/<id>/checkpoints/`; training resumes from the last one
after an interruption. Validation loss is measured every `eval_steps`, training stops
early when it stops improving, and the best checkpoint is the one kept. The loss curve
is saved as `loss.png`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personae.training.base import load_tokenizer
from personae.training.errors import RecipeError
from personae.training.recipe import LoraConfigSection, TrainConfig
from personae.training.rundir import write_json


@dataclass(frozen=True)
class FitResult:
    adapter_dir: Path
    metrics: dict[str, Any]
    loss_plot: Path


def lora_config(section: LoraConfigSection) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=list(section.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def _use_bf16(precision: str, *, cuda: bool, quantization: str) -> bool:
    """Whether to train under bf16 autocast (the adapter's own weights stay fp32)."""
    import torch

    if quantization == "nf4":
        return True  # QLoRA computes in bf16 (bnb_4bit_compute_dtype)
    if cuda:
        supported = torch.cuda.is_bf16_supported()
    else:
        # oneDNN's check is true on AVX512-BF16 or AMX: there autocast is faster; on
        # older CPUs bf16 is emulated and slower than fp32.
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if precision == "bf16" and not supported:
        raise RecipeError(
            "train.precision = 'bf16' but this "
            + ("GPU" if cuda else "CPU (no AVX512-BF16 or AMX)")
            + " has no native bf16; use 'auto' or 'fp32'"
        )
    return precision == "bf16" or (precision == "auto" and supported)


def _load_model(base_dir: Path, quantization: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if quantization == "nf4":
        if not torch.cuda.is_available():
            raise RecipeError(
                "lora.quantization = 'nf4' (QLoRA) needs a CUDA GPU; on a CPU set it to 'none'"
            )
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as exc:
            raise RecipeError(
                "lora.quantization = 'nf4' needs bitsandbytes (pip install bitsandbytes)"
            ) from exc
        from peft import prepare_model_for_kbit_training

        model = AutoModelForCausalLM.from_pretrained(
            str(base_dir),
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
            device_map={"": 0},
        )
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)


def _latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    return found[-1] if found else None


def fit_adapter(
    *,
    base_dir: Path,
    train_file: Path,
    val_file: Path,
    out_dir: Path,
    lora: LoraConfigSection,
    train: TrainConfig,
    show_progress: bool = True,
) -> FitResult:
    """Train one adapter; the best weights end up in `out_dir/adapter/`."""
    import torch
    from datasets import load_dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig, SFTTrainer

    if train.threads:
        torch.set_num_threads(train.threads)
    cuda = torch.cuda.is_available()
    use_bf16 = _use_bf16(train.precision, cuda=cuda, quantization=lora.quantization)
    tokenizer = load_tokenizer(base_dir, for_training=True)
    model = _load_model(base_dir, lora.quantization)
    data = load_dataset("json", data_files={"train": str(train_file), "val": str(val_file)})

    n_train = len(data["train"])
    steps_per_epoch = max(1, math.ceil(n_train / (train.batch_size * train.grad_accum)))
    total_steps = (
        train.max_steps if train.max_steps > 0 else math.ceil(steps_per_epoch * train.epochs)
    )
    eval_steps = min(train.eval_steps, total_steps)
    checkpoints = out_dir / "checkpoints"
    args = SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=int(train.warmup_ratio * total_steps),
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        max_length=train.max_length,
        packing=train.packing,
        assistant_only_loss=train.assistant_only_loss,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=1,
        report_to="none",
        seed=train.seed,
        use_cpu=not cuda,
        bf16=use_bf16,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        disable_tqdm=not show_progress,
        save_only_model=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["val"],
        processing_class=tokenizer,
        peft_config=lora_config(lora),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=train.early_stopping_patience)],
    )
    resume = _latest_checkpoint(checkpoints)
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    elapsed = time.monotonic() - started
    final_eval = trainer.evaluate()

    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    history = trainer.state.log_history
    plot = plot_losses(history, out_dir / "loss.png", title=out_dir.name)
    metrics = {
        "train_examples": n_train,
        "val_examples": len(data["val"]),
        "steps": trainer.state.global_step,
        "planned_steps": total_steps,
        "stopped_early": trainer.state.global_step < total_steps,
        "train_loss": round(float(result.training_loss), 4),
        "best_eval_loss": round(float(trainer.state.best_metric), 4)
        if trainer.state.best_metric is not None
        else None,
        "eval_loss": round(float(final_eval["eval_loss"]), 4),
        "train_seconds": round(elapsed, 1),
        "resumed_from": resume.name if resume else None,
        "device": "cuda" if cuda else "cpu",
        "precision": "bf16" if use_bf16 else "fp32",
        "trainable_parameters": sum(
            p.numel() for p in trainer.model.parameters() if p.requires_grad
        ),
    }
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "log_history.json", history)
    return FitResult(adapter_dir, metrics, plot)


def plot_losses(history: list[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{title} loss" if title else "loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
