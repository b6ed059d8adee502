"""Any Llama-family base, not only the bundled SmolLM2: a small randomly initialised
Llama with its own shape and chat template, made and saved here, goes through training
(a few steps), the daemon's loader and the GGUF LoRA converter (docs/models.md)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from personae.daemon.characters import GenerationParams, load_cast
from personae.daemon.engines.base import ChatMessage, GenerationRequest

from .conftest import EXAMPLES, STORY

QUESTIONS = EXAMPLES / "hollowmere" / "eval"

pytestmark = pytest.mark.models

#: a Llama-3 style template, unlike SmolLM2's ChatML: nothing in training may assume ChatML
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
HIDDEN, LAYERS, HEADS, KV_HEADS = 64, 3, 4, 2


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised LlamaForCausalLM, saved as a studio's HF folder would be."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.settings import Settings

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(str(base_model_dir(Settings())))
    tok.add_special_tokens(
        {"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    )
    tok.eos_token = "<|eot_id|>"
    tok.chat_template = LLAMA3_TEMPLATE
    tok.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|eot_id|>"),
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


def recipe(root: Path, base: Path) -> Path:
    path = root / "recipe.toml"
    path.write_text(
        f"""name = "any-base"
sources = [{json.dumps(str(STORY))}]
base_model = {json.dumps(str(base))}

[[characters]]
id = "bram"
pronouns = "he"
aliases = ["the smith"]

[lora]
r = 4
alpha = 8

[train]
max_steps = 2
batch_size = 2
eval_steps = 2
max_length = 256
learning_rate = 1e-3

[dataset]
max_tokens = 256
val_fraction = 0.1
lore_budget_tokens = 40

[strategies.rewrite]
enabled = false

[evaluation]
prompts = 2
max_new_tokens = 8
questions = {json.dumps(str(QUESTIONS))}
questions_per_character = 2

[output]
run_dir = "run"
adapters_dir = "store"
"""
    )
    return path


def test_a_random_tiny_llama_trains_serves_and_converts(tiny_llama: Path, tmp_path: Path) -> None:
    from personae.daemon.adapters.gguf import BaseInfo, converted
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.training.pipeline import Pipeline
    from personae.training.recipe import load_recipe

    # training: the pipeline's own stages, on the recipe's base_model
    p = Pipeline(load_recipe(recipe(tmp_path, tiny_llama)), show_progress=False)
    p.ingest()
    p.extract()
    p.dataset()
    adapter = p.fit()["bram"]
    manifest = json.loads((adapter / "manifest.json").read_text())
    assert manifest["base"]["hidden_size"] == HIDDEN
    assert manifest["base"]["num_hidden_layers"] == LAYERS
    assert manifest["metrics"]["steps"] == 2
    # served as trained: the daemon reads the lore budget from the adapter reference
    assert manifest["lore_budget_tokens"] == 40
    trained = load_cast([adapter])["bram"]
    assert trained.adapter is not None and trained.adapter.lore_budget_tokens == 40
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_llama)

    # the daemon's loader: the base from its folder (settings.llm_model), the adapter on it
    llm = TransformersLLM(model_dir=tiny_llama)
    llm.load_adapter("bram", str(adapter))
    request = GenerationRequest(
        messages=[ChatMessage("system", "You are Bram."), ChatMessage("user", "Hello?")],
        params=GenerationParams(temperature=0.0, max_tokens=6),
        seed=0,
    )
    prompt, _ = llm.count_tokens(request.messages, "")
    assert prompt > 5
    base_ids = "".join(llm.generate(request, threading.Event()))
    with_adapter = "".join(
        llm.generate(
            GenerationRequest(request.messages, request.params, adapter="bram", seed=0),
            threading.Event(),
        )
    )
    assert isinstance(base_ids, str) and isinstance(with_adapter, str)

    # the run's evaluation stage: the question sets scored as `personae eval` scores them
    report = p.evaluate()
    summary = report["questions"]["bram"]
    assert set(summary) == {"adapter", "prompt", "base"}
    assert all(s["replies"] == 2 and s["complete"] == 1.0 for s in summary.values())
    assert (p.run / "eval/questions/bram.png").is_file()
    assert "eval/questions/report.md" in (p.run / "report.md").read_text()

    # the GGUF converter: a llama.cpp header describing this base (its shape, not SmolLM2's)
    from gguf import GGUFReader, GGUFWriter

    base_file = tmp_path / "tiny.gguf"
    writer = GGUFWriter(str(base_file), "llama")
    writer.add_block_count(LAYERS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    base = BaseInfo.read(base_file)
    assert (base.n_layers, base.n_head, base.n_head_kv) == (LAYERS, HEADS, KV_HEADS)
    out = converted(adapter, base, tmp_path / "gguf-cache")
    tensors = {t.name: np.array(t.data) for t in GGUFReader(str(out)).tensors}
    modules = manifest["lora"]["target_modules"]
    assert len(tensors) == LAYERS * len(modules) * 2
    q_b = tensors["blk.0.attn_q.weight.lora_b"]
    k_b = tensors["blk.2.attn_k.weight.lora_b"]
    assert q_b.shape == (HIDDEN, 4) and k_b.shape == (HIDDEN // HEADS * KV_HEADS, 4)
