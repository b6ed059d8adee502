"""A long conversation with one character: what each turn still has to prefill.

The player talks to the bundled Bram (his own adapter) for `--turns` turns. Each
prompt is what the daemon builds: Bram's system prompt and examples, the recent
history, a per-reply context (mood and memories, new every reply, placed just before
the player's line) and the player's line. Compared in one run, each strategy on a
fresh engine, on the transformers engine and on llama.cpp:

- no reuse:        every prompt prefilled from its first token;
- reuse, sliding:  prompt-prefix reuse, the history window moving one line per turn
                   (as before): once the history is longer than the window, every
                   prompt changes right after the examples;
- reuse:           prompt-prefix reuse, the window moving half a window at a time
                   (the daemon's window);
- reuse + prime:   as reuse, and after each reply the next prompt is prefilled as far
                   as it is known (the history with that reply), as the daemon does
                   once a reply has gone out: the daemon's default.

Reports time to first token per turn and prompt tokens computed, p50 over the turns
after the first, and the priming time (spent while the player hears the reply's end,
not while they wait). Replies are greedy, so the strategies hold the same
conversation until a near tie rounds differently.

    personae bench conversation [--turns 16] [--max-tokens 24] [--history-turns 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _perf

PLAYER = [
    "Morning, Bram. Busy day at the forge?",
    "Can you fix my sword? The edge is chipped.",
    "How long will that take?",
    "What do you charge for a new horseshoe?",
    "Have you seen the lights on the old mill?",
    "Who do you think is carrying them?",
    "Did you know the miller well?",
    "What happened the night it burned?",
    "Is the bridge safe to cross after dark?",
    "Do you need any help with the bellows?",
    "Where did you learn to work iron?",
    "What is the hardest thing you ever made?",
    "Do you trust the captain of the guard?",
    "Should I go to the mill tonight?",
    "Will you come with me?",
    "Thank you, Bram. I will be careful.",
]
MOODS = ["calm", "wary", "amused", "tired", "curious", "gruff", "warm", "worried"]
STRATEGIES = ["no reuse", "reuse, sliding", "reuse", "reuse + prime"]


def context(turn: int) -> list[str]:
    """A per-reply context as the daemon writes it: it changes on every reply."""
    return [
        f"Bram is {MOODS[turn % len(MOODS)]} (trust {40 + 3 * turn}/100) towards the player.",
        f"Bram remembers: the player asked about the mill {turn // 3 + 1} times.",
    ]


def prompt_length(tokenizer: Any, messages: list[Any]) -> int:
    chat = [{"role": m.role, "content": m.content} for m in messages]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def run(engine: Any, strategy: str, args: argparse.Namespace, tokenizer: Any) -> list[dict]:
    from personae.daemon.characters import GenerationParams
    from personae.daemon.characters.loader import default_cast_dir, load_cast
    from personae.daemon.engines.base import GenerationRequest
    from personae.daemon.session.prompt import Turn, build_messages

    bram = load_cast([default_cast_dir()])["bram"]
    params = GenerationParams(
        temperature=0.0, max_tokens=args.max_tokens, repetition_penalty=1.1, stop=("\n",)
    )
    window = args.history_turns
    history: list[Turn] = []
    rows = []
    for turn in range(args.turns):
        history.append(Turn("player", PLAYER[turn % len(PLAYER)]))
        if strategy == "reuse, sliding":
            shown, window_turns = history[-2 * window :], 10**6
        else:
            shown, window_turns = history, window
        messages = build_messages(bram, shown, max_turns=window_turns, context=context(turn))
        before = engine.prompt_tokens()
        t0 = time.perf_counter()
        first = None
        text = ""
        for delta in engine.generate(
            GenerationRequest(messages, params, adapter="bram"), threading.Event()
        ):
            first = first or time.perf_counter()
            text += delta
        end = time.perf_counter()
        after = engine.prompt_tokens()
        reply = text.strip() or "Hm."
        history.append(Turn("bram", reply))
        prime_ms = 0.0
        if strategy == "reuse + prime":
            ahead = build_messages(bram, history, max_turns=window)
            t1 = time.perf_counter()
            engine.prime(GenerationRequest(ahead, params, adapter="bram"))
            prime_ms = (time.perf_counter() - t1) * 1e3
        rows.append(
            {
                "turn": turn + 1,
                "ttft_ms": ((first or end) - t0) * 1e3,
                "computed": after["computed"] - before["computed"],
                "reused": after["reused"] - before["reused"],
                "prompt": prompt_length(tokenizer, messages),
                "prime_ms": prime_ms,
                "reply": reply,
            }
        )
        print(
            f"  turn {turn + 1:>2}: TTFT {rows[-1]['ttft_ms']:6.0f} ms, "
            f"{rows[-1]['computed']:>4} of {rows[-1]['prompt']:>4} prompt tokens computed"
            + (f", primed in {prime_ms:.0f} ms" if prime_ms else ""),
            flush=True,
        )
    return rows


def make_engine(kind: str, strategy: str, tmp: Path) -> Any:
    from personae.daemon.characters.loader import default_cast_dir
    from personae.daemon.engines.llm_llamacpp import LlamaCppLLM
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.daemon.models.smollm2 import base_model_dir, gguf_path
    from personae.daemon.settings import Settings

    reuse = strategy != "no reuse"
    if kind == "transformers":
        engine = TransformersLLM(
            model_dir=base_model_dir(Settings()), prefix_cache_tokens=4096 if reuse else 0
        )
    else:
        engine = LlamaCppLLM(gguf_file=gguf_path(), lora_cache_dir=tmp / "gguf", prompt_cache=reuse)
    engine.load_adapter("bram", default_cast_dir() / "adapters" / "bram" / "v1")
    engine.warmup()
    return engine


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--turns", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--history-turns", type=int, default=4, help="the window, in exchanges")
    ap.add_argument("--engines", default="transformers,llamacpp")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.settings import Settings

    info = _perf.machine()
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir(Settings()))
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.engines.split(","):
            results[kind] = {}
            for strategy in STRATEGIES:
                print(f"{kind} / {strategy}", flush=True)
                engine = make_engine(kind, strategy, Path(tmp))
                results[kind][strategy] = run(engine, strategy, args, tokenizer)
                if hasattr(engine, "close"):
                    engine.close()

    summary: dict[str, dict[str, dict[str, float]]] = {}
    print(f"\nconversation of {args.turns} turns with Bram, {_perf.describe(info)}")
    print(
        f"{'engine / strategy':<34}{'TTFT p50':>10}{'p95':>8}{'computed p50':>14}{'prime p50':>11}"
    )
    for kind, by in results.items():
        summary[kind] = {}
        for strategy, rows in by.items():
            later = rows[1:]
            s = {
                "ttft_p50_ms": _perf.median([r["ttft_ms"] for r in later]),
                "ttft_p95_ms": _perf.pct([r["ttft_ms"] for r in later], 0.95),
                "computed_p50": _perf.median([r["computed"] for r in later]),
                "prime_p50_ms": _perf.median([r["prime_ms"] for r in later]),
            }
            summary[kind][strategy] = s
            print(
                f"{kind + ' / ' + strategy:<34}{s['ttft_p50_ms']:>10.0f}{s['ttft_p95_ms']:>8.0f}"
                f"{s['computed_p50']:>14.0f}{s['prime_p50_ms']:>11.0f}"
            )
        # greedy replies, but prefill in other chunks rounds differently: a reply can
        # change at a near tie, and the conversation goes on from there
        same = next(
            (t for t in range(args.turns) if len({rows[t]["reply"] for rows in by.values()}) > 1),
            args.turns,
        )
        print(f"  {kind}: every strategy gave the same replies for the first {same} turns")
        summary[kind]["same_replies_turns"] = same  # type: ignore[assignment]

    def plot(fig) -> None:
        axes = fig.subplots(1, len(results), squeeze=False)[0]
        for ax, (kind, by) in zip(axes, results.items(), strict=True):
            for strategy, rows in by.items():
                ax.plot(
                    [r["turn"] for r in rows], [r["ttft_ms"] for r in rows], "o-", label=strategy
                )
            ax.set_title(kind)
            ax.set_xlabel("turn")
            ax.set_ylabel("time to first token (ms)")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        fig.suptitle(
            f"a {args.turns}-turn conversation with Bram, history window {args.history_turns} "
            f"exchanges ({info['cores']} cores)"
        )

    _perf.save(
        "conversation",
        {"machine": info, "args": vars(args), "summary": summary, "turns": results},
        plot,
    )


if __name__ == "__main__":
    sys.exit(main())
