"""The fit stage: a LoRA adapter per character, checked and installed in the store.

The recipe's LoRA settings are checked against the base model before any time is
spent; a character whose data and settings are unchanged and whose adapter is
installed is not trained again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from personae.daemon.adapters.files import WEIGHTS_FILE
from personae.training.errors import TrainingError
from personae.training.stages.fingerprint import digest, file_digest

if TYPE_CHECKING:
    from personae.training.pipeline import Pipeline


def fit(pipe: Pipeline, only: list[str] | None = None, force: bool = False) -> dict[str, Path]:
    import torch
    from transformers import AutoModelForCausalLM

    from personae.training.base import resolve_base
    from personae.training.fit import fit_adapter
    from personae.training.store import (
        check_adapter,
        check_recipe_against_base,
        install_adapter,
    )
    from personae.training.voice import choose_voices

    base_dir = resolve_base(pipe.recipe.base_model)
    probe = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    check_recipe_against_base(pipe.recipe.lora, probe)  # before any time is spent
    voices = choose_voices(list(pipe.characters.values()))
    store = pipe.adapters_dir()
    installed: dict[str, Path] = {}
    ids = only or [t.id for t in pipe.recipe.characters]
    for cid in ids:
        if cid not in pipe.characters:
            raise TrainingError(
                f"{cid!r} is not a character of this recipe ({', '.join(pipe.characters)})"
            )
        data = pipe.run / f"dataset/{cid}"
        if not (data / "train.jsonl").is_file():
            raise TrainingError(f"{data}/train.jsonl is missing: run the dataset stage first")
        stage = f"fit:{cid}"
        fp = digest(
            [
                pipe.recipe.fingerprint("lora", "train", "output"),
                file_digest(data / "train.jsonl"),
                file_digest(data / "val.jsonl"),
            ]
        )
        target = store / cid / pipe.recipe.output.version
        if not force and pipe.run.is_done(stage, fp) and (target / WEIGHTS_FILE).is_file():
            pipe.say(f"[dim]fit {cid}: done already, adapter at {target}[/dim]")
            installed[cid] = target
            continue
        pipe.say(f"fit {cid}: training (progress below; interrupt and rerun to resume)")
        result = fit_adapter(
            base_dir=base_dir,
            train_file=data / "train.jsonl",
            val_file=data / "val.jsonl",
            out_dir=pipe.run / f"fit/{cid}",
            lora=pipe.recipe.lora,
            train=pipe.recipe.train,
            show_progress=pipe.show_progress,
        )
        check = check_adapter(result.adapter_dir, probe, cast_mates=dict(installed))
        target = install_adapter(
            adapter_dir=result.adapter_dir,
            store=store,
            character=pipe.characters[cid],
            version=pipe.recipe.output.version,
            base_dir=base_dir,
            lora=pipe.recipe.lora,
            voice=voices[cid],
            metrics=result.metrics,
            check=check,
            lore_budget_tokens=pipe.recipe.dataset.lore_budget_tokens,
        )
        pipe.run.mark_done(stage, fp, adapter=str(target), metrics=result.metrics)
        installed[cid] = target
        pipe.say(
            f"fit {cid}: eval loss {result.metrics['eval_loss']} after {result.metrics['steps']} steps, {result.metrics['train_seconds']} s -> {target}"
        )
    return installed
