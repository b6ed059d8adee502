"""Real LoRA adapters for tests and benchmarks, trained in seconds on the real base model.

`train_tiny_adapter` teaches the base to answer a few questions with `text`: a few
steps at a high learning rate are enough to move greedy replies clearly away from the
base model's, which is what adapter tests need to tell adapters apart. torch,
transformers and peft (the `daemon` extra) load on the first call.
"""

from __future__ import annotations

from pathlib import Path

QUESTIONS = (
    "Who are you?",
    "What do you do all day?",
    "Can you help me?",
    "What is this place?",
)


def train_tiny_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    text: str,
    steps: int = 8,
    seed: int = 0,
    lr: float = 2e-3,
) -> Path:
    """Train an r=8 q_proj/v_proj LoRA on `base_dir` to answer with `text`; save to `out_dir`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(model, config)
    model.train()

    input_ids, labels = _batch(tokenizer, text)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def _batch(tokenizer, text: str):
    """Chat examples padded into one batch; loss on the assistant's reply only."""
    import torch

    rows: list[tuple[list[int], list[int]]] = []
    for question in QUESTIONS:
        chat = [{"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        rows.append((p_ids + r_ids, [-100] * len(p_ids) + r_ids))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    # right padding with the loss masked: pad positions never influence earlier tokens
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    return input_ids, labels
