"""A real short training run on the real base model, then the daemon loads the adapter.

Marked `models`: it needs the bundled SmolLM2 (prepared once into the cache). The run
is a handful of optimizer steps so the test stays in budget on a 2-core CPU.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from personae.daemon.characters import GenerationParams, load_character
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.training.errors import AdapterCompatError, RecipeError
from personae.training.pipeline import Pipeline
from personae.training.recipe import LoraConfigSection, TrainConfig, load_recipe
from personae.training.rundir import read_jsonl

from .conftest import STORY

pytestmark = pytest.mark.models

RECIPE = f"""name = "short"
sources = [{json.dumps(str(STORY))}]

[[characters]]
id = "bram"
pronouns = "he"
aliases = ["the smith"]

[lora]
r = 8
alpha = 16

[train]
max_steps = 2
batch_size = 2
eval_steps = 2
max_length = 288
learning_rate = 1e-3

[dataset]
max_tokens = 288
val_fraction = 0.1

[strategies.rewrite]
enabled = false

[output]
run_dir = "run"
adapters_dir = "store"
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Path]:
    root = tmp_path_factory.mktemp("short-run")
    (root / "recipe.toml").write_text(RECIPE)
    p = Pipeline(load_recipe(root / "recipe.toml"), show_progress=False)
    p.ingest()
    p.extract()
    p.dataset()
    adapters = p.fit()
    return p, adapters["bram"]


def _reply(llm, adapter: str | None) -> str:  # type: ignore[no-untyped-def]
    request = GenerationRequest(
        messages=[
            ChatMessage("system", "You are Bram, the blacksmith."),
            ChatMessage("user", "What are you making?"),
        ],
        params=GenerationParams(temperature=0.0, max_tokens=12),
        adapter=adapter,
        seed=0,
    )
    return "".join(llm.generate(request, threading.Event()))


def test_short_run_installs_an_adapter_the_daemon_loads_and_swaps(
    trained: tuple[Pipeline, Path], tmp_path: Path
) -> None:
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.training.base import resolve_base

    p, adapter = trained
    assert adapter == p.recipe.run_dir.parent / "store" / "bram" / "v1"
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["lora"]["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert manifest["lora"]["r"] == 8 and manifest["check"]["ranks"] == [8]
    assert (
        manifest["base"]["model_type"] == "llama" and len(manifest["base"]["config_sha256"]) == 64
    )
    assert manifest["metrics"]["steps"] == 2
    assert (p.run / "fit/bram/loss.png").stat().st_size > 1000
    character = load_character(adapter / "character.toml")
    assert character.adapter is not None and (
        character.adapter.name,
        character.adapter.version,
    ) == ("bram", "v1")
    assert json.loads((adapter / "voice.json").read_text())["pitch"] == character.voice.pitch

    llm = TransformersLLM(model_dir=resolve_base(None))
    llm.load_adapter("bram", adapter)
    base_reply, bram_reply = _reply(llm, None), _reply(llm, "bram")
    assert base_reply and bram_reply
    # a second version of the same adapter hot-swaps in place (same layers and ranks)
    v2 = tmp_path / "v2"
    shutil.copytree(adapter, v2)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(v2 / "adapter_model.safetensors"))
    save_file(
        {k: v * 0 if "lora_B" in k else v for k, v in weights.items()},
        str(v2 / "adapter_model.safetensors"),
    )
    llm.swap_adapter("bram", v2)
    assert _reply(llm, "bram") == base_reply  # zero lora_B: exactly the base model again
    llm.swap_adapter("bram", adapter)
    assert _reply(llm, "bram") == bram_reply


def test_rerun_skips_done_stages_and_resumes(trained: tuple[Pipeline, Path]) -> None:
    p, adapter = trained
    mtime = (adapter / "adapter_model.safetensors").stat().st_mtime_ns
    again = Pipeline(p.recipe, show_progress=False)
    again.ingest()
    again.extract()
    again.dataset()
    assert again.fit()["bram"] == adapter
    assert (adapter / "adapter_model.safetensors").stat().st_mtime_ns == mtime  # not retrained


def test_perplexity_and_merged_export(trained: tuple[Pipeline, Path], tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from personae.training.base import resolve_base
    from personae.training.evaluate import perplexity_report
    from personae.training.export import export_merged

    p, adapter = trained
    base_dir = resolve_base(None)
    val = p.run / "dataset/bram/val.jsonl"
    report = perplexity_report(base_dir, {"bram": adapter}, {"bram": val})
    assert report["bram"]["lines"] == len(list(read_jsonl(val)))
    assert report["bram"]["base"] > 1 and report["bram"]["adapter"] > 1
    assert report["bram"]["adapter"] != report["bram"]["base"]

    merged_dir = export_merged(tmp_path / "merged", base_dir=base_dir, adapter_dir=adapter)
    ids = torch.tensor([[1, 9690, 198, 67, 2]])
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    peft = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(base_dir)), str(adapter)
    ).eval()
    with torch.inference_mode():
        assert torch.allclose(merged(ids).logits, peft(ids).logits, atol=1e-4)
    assert (merged_dir / "tokenizer.json").is_file()


def test_incompatible_lora_settings_fail_before_training(trained: tuple[Pipeline, Path]) -> None:
    from transformers import AutoModelForCausalLM

    from personae.training.base import resolve_base
    from personae.training.store import check_recipe_against_base

    base = AutoModelForCausalLM.from_pretrained(str(resolve_base(None)))
    with pytest.raises(AdapterCompatError, match=r"lora.target_modules \['qkv_proj'\]"):
        check_recipe_against_base(LoraConfigSection(target_modules=("q_proj", "qkv_proj")), base)


def test_qlora_on_cpu_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the GPU test covers QLoRA")
    from personae.training.base import resolve_base
    from personae.training.fit import _load_model

    with pytest.raises(RecipeError, match=r"lora.quantization = 'nf4'.*CUDA"):
        _load_model(resolve_base(None), "nf4")
    assert TrainConfig().max_length == 256


def test_bundled_cast_adapters_load_in_the_daemon() -> None:
    """The adapters the default cast names (and v1, the baseline its evaluation compares
    against), as the daemon serves them."""
    from personae.daemon.characters import default_cast_dir, load_cast
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.training.base import base_fingerprint, resolve_base

    root = default_cast_dir() / "adapters"
    cast = load_cast([default_cast_dir()])
    found = sorted(p.parent.parent.name for p in root.glob("*/v1/adapter_config.json"))
    assert found == ["bram", "mara", "wren"] == sorted(cast)
    base_dir = resolve_base(None)
    llm = TransformersLLM(model_dir=base_dir)
    replies = {}
    for cid in found:
        ref = cast[cid].adapter
        assert ref is not None
        for version in sorted({"v1", ref.version}):
            folder = root / cid / version
            manifest = json.loads((folder / "manifest.json").read_text())
            assert manifest["base"] == base_fingerprint(base_dir)  # trained for this very base
            llm.load_adapter(f"{cid}@{version}", folder)
            replies[f"{cid}@{version}"] = _reply(llm, f"{cid}@{version}")
    assert all(replies.values())
