"""Installing a trained adapter where the daemon looks for it, after checking it loads.

    <adapters_dir>/<name>/<version>/
        adapter_config.json, adapter_model.safetensors   the PEFT folder
        manifest.json     base model id and config hash, rank, target modules, metrics
        voice.json        the character's voice config
        character.toml    the character file, its adapter reference pointing here

Compatibility is checked twice: before training (the recipe's LoRA settings against
the base's layers and what the daemon's engine accepts) and after (the saved folder
through the daemon's own validator, `adapters.files.validate`, so a trained adapter never
fails at load).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from personae.daemon.adapters.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelLayers,
    swappable,
    validate,
)
from personae.daemon.characters import Character, VoiceConfig
from personae.daemon.errors import ConfigError
from personae.training.base import base_fingerprint, base_model_id, base_model_ref
from personae.training.errors import AdapterCompatError
from personae.training.recipe import LoraConfigSection
from personae.training.rundir import write_atomic, write_json

MANIFEST = "manifest.json"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def check_recipe_against_base(lora: LoraConfigSection, base_model: Any) -> list[str]:
    """Before training: every target module names linear layers of the base."""
    import torch

    linear_names = {
        n.rsplit(".", 1)[-1]
        for n, m in base_model.named_modules()
        if isinstance(m, torch.nn.Linear)
    }
    missing = [t for t in lora.target_modules if t not in linear_names]
    if missing:
        raise AdapterCompatError(
            f"lora.target_modules {missing} are not linear layers of the base model "
            f"(it has: {', '.join(sorted(linear_names))})"
        )
    return sorted(set(lora.target_modules))


def check_adapter(
    adapter_dir: Path, base_model: Any, *, cast_mates: dict[str, Path] | None = None
) -> dict[str, Any]:
    """After training: the daemon's own validation, and hot-swap compatibility with cast mates.

    The daemon swaps adapters in place when shapes and PEFT settings agree (use_rslora,
    lora_dropout, use_dora, alpha_pattern, target modules); adapters that differ still
    load side by side, so a mismatch with a cast mate is reported, not refused.
    """
    # layer names and linear shapes of the plain base, as the daemon's engine takes them
    layers = ModelLayers.of(base_model)
    try:
        info, _ = validate(adapter_dir, layers)
    except ConfigError as exc:
        raise AdapterCompatError(f"trained adapter would not load in the daemon: {exc}") from exc
    swappable_with = []
    for mate, path in (cast_mates or {}).items():
        try:
            other, _ = validate(path, layers)
        except ConfigError:
            continue
        if swappable(other, info):
            swappable_with.append(mate)
    return {"layers": len(info.shapes), "ranks": info.ranks, "hotswappable_with": swappable_with}


def install_adapter(
    *,
    adapter_dir: Path,
    store: Path,
    character: Character,
    version: str,
    base_dir: Path,
    lora: LoraConfigSection,
    voice: VoiceConfig,
    metrics: dict[str, Any],
    check: dict[str, Any],
    lore_budget_tokens: int = 0,
) -> Path:
    """Copy the adapter into `<store>/<id>/<version>/` with its manifest; returns that folder.

    `lore_budget_tokens` is the lore its training prompts held: the manifest and the
    character file's adapter reference record it, so the daemon serves prompts alike."""
    target = store / character.id / version
    tmp = target.with_name(f".{version}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shutil.copyfile(adapter_dir / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
    (tmp / WEIGHTS_FILE).chmod(0o644)  # safetensors writes 0600
    config = json.loads((adapter_dir / CONFIG_FILE).read_text())
    config["base_model_name_or_path"] = base_model_ref(base_dir)  # not this machine's cache path
    write_json(tmp / CONFIG_FILE, config)
    manifest = {
        "character": character.id,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": base_model_id(base_dir),
        "base": base_fingerprint(base_dir),
        "lora": {
            "r": lora.r,
            "alpha": lora.alpha,
            "dropout": lora.dropout,
            "target_modules": sorted(lora.target_modules),
            "quantization": lora.quantization,
        },
        "lore_budget_tokens": lore_budget_tokens,
        "check": check,
        "metrics": metrics,
        "size_bytes": (tmp / WEIGHTS_FILE).stat().st_size,
    }
    write_json(tmp / MANIFEST, manifest)
    write_json(tmp / "voice.json", voice.model_dump(mode="json"))
    toml = character_toml(
        character, voice=voice, version=version, lore_budget_tokens=lore_budget_tokens
    )
    write_atomic(tmp / "character.toml", toml)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def character_toml(
    character: Character, *, voice: VoiceConfig, version: str, lore_budget_tokens: int = 0
) -> str:
    """The character file with its trained voice and adapter reference."""
    data = character.model_dump(mode="json", exclude_defaults=True)
    data["voice"] = voice.model_dump(mode="json")
    data["adapter"] = {
        "name": character.id,
        "version": version,
        "lore_budget_tokens": lore_budget_tokens,
    }
    return _toml(data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        # nested tables (an action's JSON Schema parameters) go inline, which TOML allows at any depth
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to a character file")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else json.dumps(k, ensure_ascii=False)


def _toml(data: dict[str, Any]) -> str:
    """A small TOML writer for character files (scalars, lists, tables, arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for k, v in data.items():
        if isinstance(v, dict) or (isinstance(v, (list, tuple)) and v and isinstance(v[0], dict)):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in tables:
        for item in v if isinstance(v, (list, tuple)) else [v]:
            lines += ["", f"[[{k}]]" if isinstance(v, (list, tuple)) else f"[{k}]"]
            lines += [f"{_toml_key(ik)} = {_toml_value(iv)}" for ik, iv in item.items()]
    return "\n".join(lines) + "\n"
