"""llama.cpp engine vs transformers engine: speed, and whether they speak as the same character.

Both run the bundled SmolLM2-135M: transformers in float32 (dequantized from the
GGUF), llama.cpp on the Q4_1 GGUF itself, with the same PEFT adapters (converted to
GGUF by personae's converter for llama.cpp). Compared in one run:

- speed: time to first token and decode tokens/s for one reply at a time, without
  and with an adapter; llama.cpp with 1 thread (the default on 2 cores) and 2 threads;
- prompt reuse: time to first token for a real character prompt (the bundled Bram:
  system prompt, examples, ~200 tokens) with an adapter, "cold" (a prompt no earlier
  request began with) and "warm" (the character's prompt already computed once, as
  after the daemon's start-up priming or an earlier turn): the transformers engine's
  prefix cache against llama.cpp's slot cache;
- agreement: greedy replies to the same prompts, token by token (the share of positions
  where both chose the same token, and how many replies are identical), for the base
  and two adapters trained to speak as a smith and a librarian.

`--quant TYPE` runs llama.cpp on another quantization of the same weights: the bundled
Q4_1 tensors dequantized and requantized to TYPE by gguf's reference quantizer (the
Q8_0 token embedding, the norms, every metadata and tokenizer key copied as they are);
results go to engines-<type>.json/png. `--quant Q4_1` rewrites the bundled file
byte for byte.

    personae bench engines [--max-tokens 32] [--runs 3] [--quant Q4_0]
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

#: quantizations gguf's Python quantizer writes whose 32-value blocks fit SmolLM2's
#: 576-wide rows (the K-quants need 256)
QUANTS = ("Q4_1", "Q4_0", "Q5_0", "Q5_1", "Q8_0")
#: general.file_type (llama_ftype) of a file whose bulk is that type
FILE_TYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9}

CHARACTERS = {
    None: None,
    "smith": "Aye, the forge burns hot and my hammer is ready.",
    "librarian": "Hush now, the old books are sleeping.",
}


def requantize(source: Path, out: Path, qtype: str) -> Path:
    """`source` with its Q4_1 tensors requantized to `qtype`; everything else copied."""
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    target = GGMLQuantizationType[qtype]
    reader = GGUFReader(str(source))
    writer = GGUFWriter(str(out), reader.fields["general.architecture"].contents())
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # the writer adds these itself
        value = FILE_TYPES[qtype] if key == "general.file_type" else field.contents()
        sub = field.types[1] if field.types[0] == GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, field.types[0], sub)
    for t in reader.tensors:
        kind = t.tensor_type
        if kind == GGMLQuantizationType.Q4_1 and target != kind:
            writer.add_tensor(t.name, quantize(dequantize(t.data, kind), target), raw_dtype=target)
        else:
            raw = None if kind == GGMLQuantizationType.F32 else kind
            writer.add_tensor(t.name, t.data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def request(question: str, adapter: str | None, max_tokens: int) -> Any:
    from personae.daemon.characters import GenerationParams
    from personae.daemon.engines.base import ChatMessage, GenerationRequest

    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, repetition_penalty=1.1)
    return GenerationRequest([ChatMessage("user", question)], params, adapter=adapter)


def character_request(question: str, adapter: str, max_tokens: int, salt: str = "") -> Any:
    """A real character's prompt; a salt at its very start makes it share no prefix."""
    from personae.daemon.characters import GenerationParams
    from personae.daemon.characters.loader import default_cast_dir, load_cast
    from personae.daemon.engines.base import ChatMessage, GenerationRequest
    from personae.daemon.session.prompt import Turn, build_messages

    bram = load_cast([default_cast_dir()])["bram"]
    messages = build_messages(bram, [Turn("player", question)])
    if salt:
        messages[0] = ChatMessage("system", f"({salt}) {messages[0].content}")
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, repetition_penalty=1.1)
    return GenerationRequest(messages, params, adapter=adapter)


def timed(engine: Any, req: Any, tokenizer: Any) -> dict[str, float | str]:
    t0 = time.perf_counter()
    first = None
    text = ""
    for delta in engine.generate(req, threading.Event()):
        if first is None:
            first = time.perf_counter()
        text += delta
    end = time.perf_counter()
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    first = first or end
    return {
        "text": text,
        "tokens": n,
        "ttft_ms": (first - t0) * 1e3,
        "decode_tok_s": (n - 1) / (end - first) if n > 1 and end > first else float("nan"),
    }


def agreement(a: list[int], b: list[int]) -> dict[str, float]:
    longest = max(len(a), len(b)) or 1
    same = sum(x == y for x, y in zip(a, b, strict=False))
    prefix = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    return {"positions": same / longest, "prefix": prefix / longest, "identical": float(a == b)}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3, help="replies per engine and adapter for speed")
    ap.add_argument(
        "--quant",
        choices=QUANTS,
        default="Q4_1",
        help="llama.cpp weights: Q4_1 = the bundled file; others requantized from it",
    )
    args = ap.parse_args()
    from personae.daemon.engines.llm_llamacpp import LlamaCppLLM
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.daemon.models.smollm2 import base_model_dir, gguf_path
    from personae.daemon.settings import Settings
    from personae.daemon.testing.tiny_adapter import train_tiny_adapter

    info = _perf.machine()
    settings = Settings()
    base_dir = base_model_dir(settings)
    with tempfile.TemporaryDirectory() as tmp:
        print("training two small adapters ...", file=sys.stderr, flush=True)
        adapters = {
            name: train_tiny_adapter(base_dir, Path(tmp) / name, text=text)
            for name, text in CHARACTERS.items()
            if name
        }
        gguf_file = gguf_path()
        if args.quant != "Q4_1":
            print(f"requantizing to {args.quant} ...", file=sys.stderr, flush=True)
            gguf_file = requantize(gguf_file, Path(tmp) / f"smollm2.{args.quant}.gguf", args.quant)
        engines: dict[str, Any] = {"transformers": TransformersLLM(model_dir=base_dir)}
        for threads in (1, 2):
            engines[f"llamacpp {threads} thread{'s' * (threads > 1)}"] = LlamaCppLLM(
                gguf_file=gguf_file, lora_cache_dir=Path(tmp) / "gguf", threads=threads
            )
        tokenizer = engines["transformers"].model.tokenizer
        for engine in engines.values():
            for name, path in adapters.items():
                engine.load_adapter(name, path)
            engine.warmup()

        speed: dict[str, dict[str, Any]] = {}
        for label, engine in engines.items():
            for adapter in (None, "smith"):
                runs = [
                    timed(
                        engine, request(_perf.QUESTIONS[i % 8], adapter, args.max_tokens), tokenizer
                    )
                    for i in range(args.runs)
                ]
                key = f"{label} / {'adapter' if adapter else 'base'}"
                speed[key] = {
                    "ttft_p50_ms": _perf.median([r["ttft_ms"] for r in runs]),
                    "decode_tok_s": _perf.median([r["decode_tok_s"] for r in runs]),
                    "tokens": [r["tokens"] for r in runs],
                }
                print(
                    f"{key:<34} TTFT {speed[key]['ttft_p50_ms']:7.0f} ms  "
                    f"{speed[key]['decode_tok_s']:6.1f} tok/s",
                    flush=True,
                )

        reuse: dict[str, dict[str, float]] = {}
        for label, engine in engines.items():
            cold = [
                timed(engine, character_request(q, "smith", 4, salt=f"{label} {i}"), tokenizer)
                for i, q in enumerate(_perf.QUESTIONS[: args.runs])
            ]
            timed(engine, character_request("Hello.", "smith", 1), tokenizer)  # the priming
            warm = [
                timed(engine, character_request(q, "smith", 4), tokenizer)
                for q in _perf.QUESTIONS[: args.runs]
            ]
            reuse[label] = {
                "cold_ttft_p50_ms": _perf.median([r["ttft_ms"] for r in cold]),
                "warm_ttft_p50_ms": _perf.median([r["ttft_ms"] for r in warm]),
            }
            print(
                f"{label:<22} character prompt TTFT cold {reuse[label]['cold_ttft_p50_ms']:6.0f} "
                f"ms, warm {reuse[label]['warm_ttft_p50_ms']:6.0f} ms",
                flush=True,
            )

        replies: dict[str, list[dict[str, Any]]] = {}
        rows = []
        for adapter in CHARACTERS:
            for question in _perf.QUESTIONS:
                req = request(question, adapter, args.max_tokens)
                ref = "".join(engines["transformers"].generate(req, threading.Event()))
                got = "".join(engines["llamacpp 1 thread"].generate(req, threading.Event()))
                ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (ref, got)]
                row = {
                    "adapter": adapter or "base",
                    "question": question,
                    "transformers": ref,
                    "llamacpp": got,
                    **agreement(*ids),
                }
                rows.append(row)
                replies.setdefault(adapter or "base", []).append(row)
        summary = {
            name: {
                k: sum(r[k] for r in group) / len(group)
                for k in ("positions", "prefix", "identical")
            }
            for name, group in replies.items()
        }
        summary["all"] = {
            k: sum(r[k] for r in rows) / len(rows) for k in ("positions", "prefix", "identical")
        }

    print(
        f"\nllama.cpp ({args.quant}) vs transformers, {args.max_tokens}-token greedy replies, "
        f"{_perf.describe(info)}"
    )
    print(f"{'engine / adapter':<34}{'TTFT p50 ms':>12}{'decode tok/s':>14}")
    for key, res in speed.items():
        print(f"{key:<34}{res['ttft_p50_ms']:>12.0f}{res['decode_tok_s']:>14.1f}")
    print("target: llama.cpp engine at least 60 tokens/s")
    print("\ncharacter prompt (~200 tokens) with an adapter, TTFT p50: cold / warm (prefix reused)")
    for label, res in reuse.items():
        print(f"  {label:<22}{res['cold_ttft_p50_ms']:>8.0f} ms {res['warm_ttft_p50_ms']:>8.0f} ms")
    print(
        f"\ngreedy agreement over {len(_perf.QUESTIONS)} prompts each (token positions / leading run / identical replies)"
    )
    for name, s in summary.items():
        print(f"  {name:<10} {s['positions']:6.1%}  {s['prefix']:6.1%}  {s['identical']:6.1%}")

    def plot(fig) -> None:
        left, right = fig.subplots(1, 2)
        keys = list(speed)
        left.barh(keys, [speed[k]["decode_tok_s"] for k in keys])
        left.axvline(60, color="grey", ls=":", label="target 60 tok/s")
        left.set_xlabel("decode tokens/s (one reply)")
        left.invert_yaxis()
        left.legend()
        names = list(summary)
        right.bar(
            names, [summary[n]["positions"] * 100 for n in names], label="same token at position"
        )
        right.bar(
            names,
            [summary[n]["identical"] * 100 for n in names],
            width=0.4,
            label="identical reply",
        )
        right.set_ylabel("% greedy agreement with transformers")
        right.set_ylim(0, 100)
        right.legend(fontsize=8)
        fig.suptitle(
            f"llama.cpp ({args.quant}) vs transformers (fp32), SmolLM2-135M ({info['cores']} cores, loaded)"
        )

    _perf.save(
        "engines" if args.quant == "Q4_1" else f"engines-{args.quant.lower()}",
        {
            "machine": info,
            "quant": args.quant,
            "max_tokens": args.max_tokens,
            "speed": speed,
            "prompt_reuse": reuse,
            "agreement": summary,
            "replies": rows,
        },
        plot,
    )


if __name__ == "__main__":
    main()
