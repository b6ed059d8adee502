"""Evaluation of trained adapters, written to the run's report.

- Perplexity on held-out character lines (the validation split): the base model and
  the base wearing the character's adapter, both with the character's system prompt,
  scored on the reply tokens only.
- Character attribution: a classifier (TF-IDF word and character n-grams, logistic
  regression) learns who said what from the characters' training lines, then guesses
  who produced replies generated for held-out prompts, once with each character's
  adapter and once with the system prompt alone. Higher accuracy = more distinct,
  more in-character voices.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from personae.training.rundir import read_jsonl


def _reply_nll(model: Any, tokenizer: Any, messages: list[dict[str, str]]) -> tuple[float, int]:
    import torch

    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    # score the reply and its end-of-turn token, not the trailing newline
    end = len(ids) - 1 if tokenizer.decode(ids[-1:]) == "\n" else len(ids)
    x = torch.tensor([ids[:end]])
    labels = x.clone()
    labels[:, : len(p_ids)] = -100
    with torch.inference_mode():
        out = model(input_ids=x, labels=labels)
    n = int((labels[:, 1:] != -100).sum())
    return float(out.loss) * n, n


def perplexity(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]]) -> float:
    total, count = 0.0, 0
    for row in rows:
        nll, n = _reply_nll(model, tokenizer, row["messages"])
        total += nll
        count += n
    return math.exp(total / max(1, count))


def perplexity_report(
    base_dir: Path, adapters: dict[str, Path], val_files: dict[str, Path]
) -> dict[str, dict[str, float]]:
    """{character: {"base": ppl, "adapter": ppl, "lines": n}} on each validation split."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from personae.training.base import load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir)).eval()
    rows = {cid: list(read_jsonl(f)) for cid, f in val_files.items()}
    out: dict[str, dict[str, float]] = {
        cid: {"base": round(perplexity(base, tokenizer, r), 2), "lines": len(r)}
        for cid, r in rows.items()
    }
    model = None
    for cid, path in adapters.items():
        if model is None:
            model = PeftModel.from_pretrained(base, str(path), adapter_name=cid)
        else:
            model.load_adapter(str(path), adapter_name=cid)
        model.set_adapter(cid)
        model.eval()
        out[cid]["adapter"] = round(perplexity(model, tokenizer, rows[cid]), 2)
    return out


#: the second class when only one character is trained: lines of the book's other speakers
OTHERS = "(other speakers)"
#: ... or, in a book where nobody else speaks enough, the base model's own replies
BASE = "(base model)"


def other_speakers_lines(
    chapters: Sequence[Any],
    make_attributor: Callable[[list[Any]], Any],
    targets: set[str],
    *,
    limit: int,
) -> list[str]:
    """Lines the book gives to speakers other than `targets` (attributed ones only)."""
    from personae.training.dialogue import extract_all

    chapters = list(chapters)
    lines = [
        u.text
        for utts in extract_all(chapters, make_attributor(chapters))
        for u in utts
        if u.speaker and u.speaker not in targets and len(u.text) > 3
    ]
    return lines[:limit]


class StyleClassifier:
    """Who said it: TF-IDF n-grams and logistic regression over the characters' lines."""

    def __init__(self, lines: dict[str, list[str]]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        texts = [t for cid in sorted(lines) for t in lines[cid]]
        labels = [cid for cid in sorted(lines) for _ in lines[cid]]
        self.model = make_pipeline(
            make_union(
                TfidfVectorizer(
                    analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=True
                ),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
            ),
            LogisticRegression(max_iter=2000, C=4.0),
        )
        self.model.fit(texts, labels)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return list(self.model.predict(list(texts)))


Generate = Callable[[str | None, list[dict[str, str]]], str]


def engine_generator(llm: Any, *, max_new_tokens: int, seed: int = 0) -> Generate:
    """Replies through the daemon's own LLM engine (`TransformersLLM`)."""
    from personae.daemon.characters import GenerationParams
    from personae.daemon.engines.base import ChatMessage, GenerationRequest

    params = GenerationParams(temperature=0.7, top_p=0.9, max_tokens=max_new_tokens)

    def generate(adapter: str | None, messages: list[dict[str, str]]) -> str:
        request = GenerationRequest(
            messages=[ChatMessage(m["role"], m["content"]) for m in messages],
            params=params,
            adapter=adapter,
            seed=seed,
        )
        return "".join(llm.generate(request, threading.Event())).strip()

    return generate


def attribution_report(
    train_lines: dict[str, list[str]],
    prompts: dict[str, list[list[dict[str, str]]]],
    generate: Generate,
    adapters: dict[str, str],
    *,
    on_reply: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Accuracy of the classifier on replies generated with each adapter vs prompt only.

    `prompts[cid]` are [system, user] message lists; `adapters[cid]` the resident name;
    `on_reply` is called after each generated reply (progress).
    """
    if len([c for c in train_lines if train_lines[c]]) < 2:
        raise ValueError(
            "the attribution test needs lines of at least two speakers "
            f"(have: {', '.join(train_lines) or 'none'})"
        )
    clf = StyleClassifier(train_lines)
    result: dict[str, Any] = {"per_character": {}, "samples": []}
    extra = [c for c in train_lines if c not in prompts]
    if extra:
        result["against"] = ", ".join(extra)
    totals = {"adapter": [0, 0], "prompt_only": [0, 0]}
    for cid, plist in prompts.items():
        row = {}
        for cond, adapter in (("adapter", adapters.get(cid)), ("prompt_only", None)):
            if cond == "adapter" and adapter is None:
                continue
            replies = []
            for msgs in plist:
                replies.append(generate(adapter, msgs))
                if on_reply is not None:
                    on_reply()
            guesses = clf.predict([r or "…" for r in replies])
            hits = sum(g == cid for g in guesses)
            row[cond] = round(hits / max(1, len(replies)), 3)
            totals[cond][0] += hits
            totals[cond][1] += len(replies)
            for msgs, reply, guess in list(zip(plist, replies, guesses, strict=True))[:2]:
                result["samples"].append(
                    {
                        "character": cid,
                        "condition": cond,
                        "user": msgs[-1]["content"][:200],
                        "reply": reply,
                        "classified_as": guess,
                    }
                )
        result["per_character"][cid] = row
    result["accuracy"] = {k: round(h / n, 3) if n else None for k, (h, n) in totals.items()}
    result["replies_per_condition"] = totals["prompt_only"][1]
    return result
