"""Dataset building: examples from every strategy to chat JSONL per character.

Each row of `train.jsonl` / `val.jsonl` is `{"messages": [system, user, assistant]}`
(the format of TRL, Axolotl and hosted fine-tuning APIs); `examples.jsonl` keeps each
row's id, split, strategy and provenance. The system prompt is the character file's
own (`Character.render_system_prompt()`), the one the daemon sends at serving time;
with `dataset.lore_budget_tokens` the lore the daemon would select for the player's line
sits between the system prompt and the line, where the daemon puts it.

The split is deterministic and independent of input order: rows are ranked by a hash
of (seed, content) and the first `val_fraction` go to validation, so adding a source
moves only the new rows.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personae.daemon.characters import Character
from personae.daemon.runtime.lore import lore_for
from personae.daemon.session.prompt import neutralise
from personae.training.errors import CharacterDataError
from personae.training.recipe import DatasetConfig
from personae.training.rundir import write_atomic, write_json, write_jsonl
from personae.training.speech_split import split_speech

TokenCounter = Callable[[list[dict[str, str]]], int]


def _norm(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def example_id(user: str, assistant: str) -> str:
    return hashlib.sha256(f"{_norm(user)}\x00{_norm(assistant)}".encode()).hexdigest()[:16]


@dataclass
class CharacterDataset:
    character: str
    train: list[dict[str, Any]] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    #: long speeches split at sentence boundaries: number of pieces -> how many speeches
    split: Counter[int] = field(default_factory=Counter)

    def rows(self, split: str) -> list[dict[str, Any]]:
        return [{"messages": r["messages"]} for r in (self.train if split == "train" else self.val)]


def split_rows(
    rows: Sequence[dict[str, Any]], *, val_fraction: float, seed: int
) -> tuple[list, list]:
    """(train, val): deterministic, order-independent; at least one row each when n >= 2."""
    ranked = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest())
    n_val = round(len(ranked) * val_fraction)
    if len(ranked) >= 2:
        n_val = min(max(1, n_val), len(ranked) - 1)
    val_ids = {r["id"] for r in ranked[:n_val]}
    return [r for r in rows if r["id"] not in val_ids], [r for r in rows if r["id"] in val_ids]


def build_character_dataset(
    character: Character,
    examples: Iterable[dict[str, Any]],
    config: DatasetConfig,
    count_tokens: TokenCounter,
    *,
    min_examples: int = 1,
    sources: Sequence[str] = (),
) -> CharacterDataset:
    system = character.render_system_prompt()
    ds = CharacterDataset(character.id)
    seen: set[str] = set()
    rows = []
    for ex in examples:
        if ex["character"] != character.id:
            continue
        user, reply = ex["user"].strip(), ex["assistant"].strip()
        if len(reply) < config.min_reply_chars:
            ds.dropped["too short"] += 1
            continue

        lore = lore_for(character, [user], budget_tokens=config.lore_budget_tokens)
        context = [{"role": "system", "content": "\n".join(map(neutralise, lore))}] if lore else []

        def chat(
            piece: str, user: str = user, context: list[dict[str, str]] = context
        ) -> list[dict[str, str]]:
            return [
                {"role": "system", "content": system},
                *context,
                {"role": "user", "content": user},
                {"role": "assistant", "content": piece},
            ]

        def fits(piece: str, chat=chat) -> bool:  # type: ignore[no-untyped-def]
            return (
                len(piece) <= config.max_reply_chars
                and count_tokens(chat(piece)) <= config.max_tokens
            )

        # a long speech becomes pieces at sentence boundaries, each after the same line
        pieces, lost = split_speech(reply, fits)
        if not pieces:
            ds.dropped["too long (no sentence or clause that fits)"] += 1
            continue
        if lost:
            ds.dropped["sentences too long even cut at their clauses"] += lost
        if len(pieces) > 1:
            ds.split[len(pieces)] += 1
        for k, piece in enumerate(pieces):
            eid = example_id(user, piece)
            if eid in seen:
                ds.dropped["duplicate"] += 1
                continue
            seen.add(eid)
            messages = chat(piece)
            provenance = dict(ex.get("provenance", {}))
            if len(pieces) > 1:
                provenance["part"] = f"{k + 1}/{len(pieces)}"
            rows.append(
                {
                    "id": eid,
                    "strategy": ex["strategy"],
                    "tokens": count_tokens(messages),
                    "provenance": provenance,
                    "messages": messages,
                }
            )
    if not rows:
        where = f" in {', '.join(sources)}" if sources else ""
        raise CharacterDataError(
            f"character {character.id!r} ({character.name}) has no usable lines{where}: "
            "check the name and aliases the text uses (recipe characters[].aliases), "
            "or enable another strategy"
        )
    if len(rows) < min_examples:
        raise CharacterDataError(
            f"character {character.id!r} has only {len(rows)} usable examples, fewer than "
            f"characters[].min_examples = {min_examples}"
        )
    ds.train, ds.val = split_rows(rows, val_fraction=config.val_fraction, seed=config.seed)
    return ds


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": min(values),
        "mean": round(statistics.fmean(values), 1),
        "median": statistics.median(values),
        "max": max(values),
        "total": sum(values),
    }


def card(ds: CharacterDataset, character: Character, *, samples: int = 3) -> dict[str, Any]:
    rows = ds.train + ds.val
    return {
        "character": character.id,
        "name": character.name,
        "examples": {"train": len(ds.train), "val": len(ds.val), "total": len(rows)},
        "by_strategy": {
            split: dict(Counter(r["strategy"] for r in part))
            for split, part in (("train", ds.train), ("val", ds.val))
        },
        "dropped": dict(ds.dropped),
        "long_speeches_split": sum(ds.split.values()),
        "tokens": {
            "train": _stats([r["tokens"] for r in ds.train]),
            "val": _stats([r["tokens"] for r in ds.val]),
        },
        "samples": [
            {
                "strategy": r["strategy"],
                "user": r["messages"][1]["content"],
                "assistant": r["messages"][2]["content"],
                "provenance": r["provenance"],
            }
            for r in ds.train[:samples]
        ],
    }


def card_markdown(c: dict[str, Any]) -> str:
    lines = [
        f"# Dataset card: {c['name']} (`{c['character']}`)",
        "",
        f"Examples: {c['examples']['train']} train, {c['examples']['val']} validation.",
        "",
        "| strategy | train | val |",
        "|---|---|---|",
    ]
    strategies = sorted(set(c["by_strategy"]["train"]) | set(c["by_strategy"]["val"]))
    for s in strategies:
        lines.append(
            f"| {s} | {c['by_strategy']['train'].get(s, 0)} | {c['by_strategy']['val'].get(s, 0)} |"
        )
    lines += [
        "",
        "Dropped: " + (", ".join(f"{k} {v}" for k, v in c["dropped"].items()) or "none"),
        "",
        f"Long speeches split at sentence boundaries (not dropped): {c.get('long_speeches_split', 0)}.",
        "",
    ]
    lines += [
        "| tokens per example | n | min | mean | median | max | total |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, st in c["tokens"].items():
        if st.get("n"):
            lines.append(
                f"| {split} | {st['n']} | {st['min']} | {st['mean']} | {st['median']} | {st['max']} | {st['total']} |"
            )
    lines += ["", "## Samples", ""]
    for s in c["samples"]:
        p = s["provenance"]
        where = (
            f"{p.get('file', '?')}, chapter {p.get('chapter', '?')}, offset {p.get('offset', '?')}"
        )
        lines += [
            f"- *{s['strategy']}* ({where})",
            f"  - user: {s['user'][:200]}",
            f"  - {c['name']}: {s['assistant'][:200]}",
        ]
    return "\n".join(lines) + "\n"


def write_character_dataset(
    out: Path, ds: CharacterDataset, character: Character
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "train.jsonl", ds.rows("train"))
    write_jsonl(out / "val.jsonl", ds.rows("val"))
    write_jsonl(
        out / "examples.jsonl",
        [
            {**{k: v for k, v in r.items() if k != "messages"}, "split": split}
            for split, part in (("train", ds.train), ("val", ds.val))
            for r in part
        ],
    )
    c = card(ds, character)
    write_json(out / "card.json", c)
    write_atomic(out / "card.md", card_markdown(c))
    return c


def chat_token_counter(tokenizer: Any) -> TokenCounter:
    """Token count of a whole conversation as the model will see it."""

    def count(messages: list[dict[str, str]]) -> int:
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    return count


def approx_token_counter(messages: list[dict[str, str]]) -> int:
    """A tokenizer-free estimate (about 1.3 tokens per word plus 4 per message)."""
    return sum(4 + int(len(m["content"].split()) * 1.3) for m in messages)
