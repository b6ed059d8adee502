"""llama.cpp prompt processing on 1 thread vs all cores, on an idle CPU and beside busy work.

Decoding one token at a time is bound by memory and gains nothing from a second
thread; prompt processing is bound by arithmetic and does. On a CPU that other work
(the game, speech recognition) keeps busy, threads that wait on each other at every
layer can lose more than they gain. Compared in one run, for each CPU state:

- cold: time to first token of Bram's whole prompt (~290 tokens, nothing cached);
- warm: the next turn's prompt, where only the new context and player line (~25
  tokens) are computed;
- decode tokens/s (the decode threads stay at `--threads`).

"busy" runs one spinning process per core but one beside the benchmark.

    personae bench prefill_threads [--runs 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _perf


def spin() -> None:
    while True:
        pass


def measure(engine: Any, runs: int, salt: str) -> dict[str, float]:
    from personae.daemon.characters import GenerationParams
    from personae.daemon.characters.loader import default_cast_dir, load_cast
    from personae.daemon.engines.base import ChatMessage, GenerationRequest
    from personae.daemon.session.prompt import Turn, build_messages

    bram = load_cast([default_cast_dir()])["bram"]
    params = GenerationParams(temperature=0.0, max_tokens=24, repetition_penalty=1.1)
    out: dict[str, list[float]] = {"cold_ms": [], "warm_ms": [], "decode_tok_s": []}
    for i in range(runs):
        history = [Turn("player", "Can you fix my sword?"), Turn("bram", "Leave it on the bench.")]
        for kind, line in (("cold_ms", "How long will it take?"), ("warm_ms", "And my axe?")):
            messages = build_messages(
                bram, [*history, Turn("player", line)], context=[f"Bram is calm ({i})."]
            )
            if kind == "cold_ms":  # a salt at the very start: no slot holds this prompt
                messages[0] = ChatMessage("system", f"({salt} {i}) {messages[0].content}")
                first_prompt = messages
            else:  # the same conversation one turn on: the slot holds all but the new turn
                messages = [*first_prompt[:-2], *messages[-2:]]
            t0 = time.perf_counter()
            first, n = None, 0
            request = GenerationRequest(messages, params, adapter="bram")
            for _ in engine.generate(request, threading.Event()):
                first = first or time.perf_counter()
                n += 1
            end = time.perf_counter()
            out[kind].append(((first or end) - t0) * 1e3)
            if n > 1:
                out["decode_tok_s"].append((n - 1) / (end - first))
    return {k: _perf.median(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="decode threads")
    args = ap.parse_args()
    from personae.daemon.characters.loader import default_cast_dir
    from personae.daemon.engines.llm_llamacpp import LlamaCppLLM
    from personae.daemon.models.smollm2 import gguf_path

    info = _perf.machine()
    cores = os.cpu_count() or 2
    variants = sorted({args.threads, cores})
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engines = {}
        for batch in variants:
            engine = LlamaCppLLM(
                gguf_file=gguf_path(),
                lora_cache_dir=Path(tmp),
                threads=args.threads,
                batch_threads=batch,
            )
            engine.load_adapter("bram", default_cast_dir() / "adapters" / "bram" / "v1")
            engine.warmup()
            engines[batch] = engine
        for state in ("idle", "busy"):
            spinners = []
            if state == "busy":
                spinners = [
                    multiprocessing.Process(target=spin, daemon=True) for _ in range(cores - 1)
                ]
                for proc in spinners:
                    proc.start()
            try:
                results[state] = {}
                for batch, engine in engines.items():
                    r = measure(engine, args.runs, f"{state}-{batch}")
                    results[state][str(batch)] = r
                    print(
                        f"{state:<5} prompt threads {batch}: cold {r['cold_ms']:6.0f} ms, "
                        f"warm {r['warm_ms']:5.0f} ms, decode {r['decode_tok_s']:5.1f} tok/s",
                        flush=True,
                    )
            finally:
                for proc in spinners:
                    proc.terminate()

    print(f"\nllama.cpp prompt threads, {_perf.describe(info)}")
    for state, by in results.items():
        one, many = by[str(variants[0])], by[str(variants[-1])]
        print(
            f"{state}: {variants[-1]} prompt threads vs {variants[0]}: cold "
            f"{one['cold_ms'] / many['cold_ms']:.2f}x, warm {one['warm_ms'] / many['warm_ms']:.2f}x faster"
        )

    def plot(fig) -> None:
        axes = fig.subplots(1, 2)
        for ax, kind in zip(axes, ("cold_ms", "warm_ms"), strict=True):
            states = list(results)
            width = 0.8 / len(variants)
            for j, batch in enumerate(variants):
                ax.bar(
                    [i + j * width for i in range(len(states))],
                    [results[s][str(batch)][kind] for s in states],
                    width,
                    label=f"{batch} prompt thread{'s' * (batch > 1)}",
                )
            ax.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(states))])
            ax.set_xticklabels(states)
            ax.set_ylabel("time to first token (ms)")
            ax.set_title("whole prompt (cold)" if kind == "cold_ms" else "next turn (warm)")
            ax.legend()
        fig.suptitle(f"llama.cpp prompt processing, Bram with his adapter ({cores} cores)")

    _perf.save("prefill_threads", {"machine": info, "runs": args.runs, "results": results}, plot)


if __name__ == "__main__":
    main()
