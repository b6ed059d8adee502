"""Multi-character throughput on the transformers engine: N concurrent sessions, N characters.

For 1, 4, 8 and 16 concurrent sessions, each on a different character (its own LoRA,
rank 8, q_proj + v_proj), every session asks one question at the same moment and the
run ends when the last reply is done. Compared in one run:

- mixed batch:  transformers-batched, all adapters resident, one forward per step for
                every session with per-row `adapter_names`;
- swap per request: the transformers engine with one adapter slot, replies served one
                at a time, the slot hot-swapped to the session's character before each;
- no adapters:  transformers-batched with no adapter loaded (the same batch on the
                plain base: the ceiling for the mixed batch).

Reports aggregate generated tokens per second and p95 time to first token; writes JSON
and PNG. Adapters have random small weights (cost depends on shapes only).

    personae bench throughput [--sessions 1,4,8,16] [--max-tokens 24]
                              [--device cuda] [--model llama-1b]

`--model llama-1b` serves a randomly initialised model of Llama 3.2 1B's shape (no
trained weights of that size ship offline); `--device cuda` runs every engine on the
GPU in bfloat16 and records the device name.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _perf

MODES = ["mixed batch", "swap per request", "no adapters"]


def requests(n: int, max_tokens: int, adapters: list[str | None]) -> list[Any]:
    from personae.daemon.characters import GenerationParams
    from personae.daemon.engines.base import ChatMessage, GenerationRequest

    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, repetition_penalty=1.1)
    return [
        GenerationRequest(
            messages=[
                ChatMessage("system", _perf.SYSTEM.format(name=f"Keeper {i}")),
                ChatMessage("user", _perf.QUESTIONS[i % len(_perf.QUESTIONS)]),
            ],
            params=params,
            adapter=adapters[i],
        )
        for i in range(n)
    ]


def timed(engine: Any, request: Any, t0: float, before=None) -> dict[str, Any]:
    if before is not None:
        before()
    first = None
    text = ""
    for delta in engine.generate(request, threading.Event()):
        if first is None:
            first = time.perf_counter() - t0
        text += delta
    return {"ttft": first, "end": time.perf_counter() - t0, "text": text}


def run_mode(mode: str, engines: dict[str, Any], paths: list[Path], n: int, max_tokens: int):
    tokenizer = engines["single"].model.tokenizer
    t0 = time.perf_counter()
    if mode == "swap per request":
        engine = engines["single"]
        reqs = requests(n, max_tokens, ["slot"] * n)
        lock = threading.Lock()  # one reply at a time: the slot holds one character

        def serve(i: int) -> dict[str, Any]:
            with lock:
                return timed(engine, reqs[i], t0, lambda: engine.swap_adapter("slot", paths[i]))

        with ThreadPoolExecutor(n) as pool:
            out = list(pool.map(serve, range(n)))
    else:
        engine = engines["batched" if mode == "mixed batch" else "plain"]
        names = [f"c{i:02d}" for i in range(n)] if mode == "mixed batch" else [None] * n
        reqs = requests(n, max_tokens, names)
        with ThreadPoolExecutor(n) as pool:
            out = list(pool.map(lambda r: timed(engine, r, t0), reqs))
    wall = max(o["end"] for o in out)
    tokens = sum(len(tokenizer(o["text"], add_special_tokens=False)["input_ids"]) for o in out)
    ttfts = [o["ttft"] for o in out if o["ttft"] is not None]
    return {
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "ttft_p50_ms": _perf.median(ttfts) * 1e3,
        "ttft_p95_ms": _perf.pct(ttfts, 0.95) * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", default="1,4,8,16")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--model",
        default="embedded",
        choices=["embedded", *_perf.RANDOM_LLAMAS],
        help="the bundled SmolLM2-135M, or a randomly initialised Llama of that shape",
    )
    args = ap.parse_args()
    from personae.daemon.engines.llm_batched import BatchedTransformersLLM
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.settings import Settings

    info = _perf.machine(args.device)
    sizes = [int(s) for s in args.sessions.split(",")]
    base_dir = base_model_dir(Settings())
    results: dict[str, dict[str, Any]] = {m: {} for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        if args.model != "embedded":
            base_dir = _perf.random_llama(base_dir, Path(tmp), args.model, device=args.device)
        paths = _perf.many_adapters(base_dir, Path(tmp), max(sizes), rank=8)
        place = {"device": args.device}
        engines = {
            "batched": BatchedTransformersLLM(model_dir=base_dir, max_batch=max(sizes), **place),
            "plain": BatchedTransformersLLM(model_dir=base_dir, max_batch=max(sizes), **place),
            "single": TransformersLLM(model_dir=base_dir, **place),
        }
        for i, path in enumerate(paths):
            engines["batched"].load_adapter(f"c{i:02d}", path)
        engines["single"].load_adapter("slot", paths[0])
        for engine in engines.values():
            engine.warmup()
        for n in sizes:
            for mode in MODES:
                res = run_mode(mode, engines, paths, n, args.max_tokens)
                results[mode][str(n)] = res
                print(
                    f"{n:>3} sessions  {mode:<17} {res['tokens_per_s']:7.1f} tok/s  "
                    f"TTFT p95 {res['ttft_p95_ms']:7.0f} ms",
                    flush=True,
                )
        engines["batched"].close()
        engines["plain"].close()

    print(f"\nthroughput, {args.max_tokens} tokens per reply, {_perf.describe(info)}")
    print(f"{'sessions':>9}" + "".join(f"{m + ' tok/s':>24}{'p95 TTFT ms':>13}" for m in MODES))
    for n in map(str, sizes):
        print(
            f"{n:>9}"
            + "".join(
                f"{results[m][n]['tokens_per_s']:>24.1f}{results[m][n]['ttft_p95_ms']:>13.0f}"
                for m in MODES
            )
        )
    ratios = {
        n: {
            "mixed_over_swap": results["mixed batch"][n]["tokens_per_s"]
            / results["swap per request"][n]["tokens_per_s"],
            "mixed_over_no_adapters": results["mixed batch"][n]["tokens_per_s"]
            / results["no adapters"][n]["tokens_per_s"],
        }
        for n in map(str, sizes)
    }
    for n, r in ratios.items():
        print(
            f"{n:>3} sessions: mixed/swap {r['mixed_over_swap']:.2f}x, "
            f"mixed/no-adapters {r['mixed_over_no_adapters']:.2f}x"
        )
    print("targets at 8 sessions: mixed/swap >= 3x, mixed/no-adapters >= 0.8x")

    def plot(fig) -> None:
        left, right = fig.subplots(1, 2)
        for mode in MODES:
            left.plot(
                sizes, [results[mode][str(n)]["tokens_per_s"] for n in sizes], "o-", label=mode
            )
            right.plot(
                sizes, [results[mode][str(n)]["ttft_p95_ms"] for n in sizes], "o-", label=mode
            )
        left.set_xlabel("concurrent sessions (one character each)")
        left.set_ylabel("aggregate tokens/s")
        right.set_xlabel("concurrent sessions (one character each)")
        right.set_ylabel("p95 time to first token (ms)")
        right.set_yscale("log")
        left.legend()
        model = "SmolLM2-135M" if args.model == "embedded" else f"random {args.model}"
        where = (
            f"{info['gpu']}, bfloat16"
            if "gpu" in info
            else f"CPU fp32 ({info['cores']} cores, loaded)"
        )
        fig.suptitle(f"{model}, transformers, {where}")

    suffix = (
        "" if (args.model, args.device) == ("embedded", "cpu") else f"_{args.model}_{args.device}"
    )
    _perf.save(
        f"throughput{suffix}",
        {
            "machine": info,
            "model": args.model,
            "device": args.device,
            "max_tokens": args.max_tokens,
            "results": results,
            "ratios": ratios,
        },
        plot,
    )


if __name__ == "__main__":
    main()
