"""Routing latency with 10, 100, 1,000 and 10,000 characters in the scene, before and after.

A turn embeds the utterance and routes it: scores against every profile (embedded once,
when the cast loads) and a scan for names. Two things are compared side by side in one
run, interleaved so the machine's load falls on both alike:

- the utterance embedders, on all-MiniLM-L6-v2 with the engines' thread count:
  sentence-transformers (the old default), the same transformer called directly with
  torch.inference_mode, the ONNX Runtime export in float32, that export through
  `quantize_dynamic` (int8, weights per channel) and the 8-bit graph the export keeps
  (weights in blocks of 32, int8 products: the new default), each with its cosine to
  sentence-transformers' embeddings;
- the router before (`_router_before.py`: every word against every name, a dict of
  every score) with sentence-transformers, and after (name index, top-k scores) with
  the default ONNX graph; for each also the routing without the embedding (the utterance's vector
  cached) and the name scan alone.

Profiles are random unit vectors: embedding 10,000 profiles takes minutes on 2 cores and
does not change the per-turn work (the real profiles are compared at 100 characters).

    personae bench routing [--sizes 10,100,1000,10000] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _perf
import numpy as np

NAMED = "Hey Mara, where can I find an old map of the river?"
UNNAMED = "Where can I find an old map of the river?"
TARGET_MS = 5.0


class LeanTorch:
    """MiniLM called directly: tokenizer, transformer, mean pooling; no sentence-transformers."""

    name = "torch, direct"

    def __init__(self, model_dir: Path, threads: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(threads)
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(model_dir)
        self._model = AutoModel.from_pretrained(model_dir).eval()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        enc = self._tok(list(texts), return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            hidden = self._model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=1).numpy()


class Cached:
    """The utterance's vector looked up, not computed: routing without the embedding."""

    name = "cached"

    def __init__(self, real: Any, texts: Sequence[str]) -> None:
        self._vectors = {t: real.embed([t]) for t in texts}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors[texts[0]]


def dynamic_int8(fp32_dir: Path, out: Path) -> Path:
    """The float32 export through `quantize_dynamic` (weights per channel), for comparison
    with the blockwise 8-bit graph the export keeps."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("tokenizer.json", "embedder.json"):
        shutil.copy(fp32_dir / name, out / name)
    quantize_dynamic(
        fp32_dir / "model.onnx",
        out / "model.onnx",
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
    )
    return out


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    """p50 and p95, and the fastest: what a turn costs when nothing else wants the core."""
    return {
        "p50_ms": _perf.median(samples) * 1e3,
        "p95_ms": _perf.pct(samples, 0.95) * 1e3,
        "min_ms": min(samples) * 1e3,
    }


def compare_embedders(embedders: dict[str, Any], repeats: int) -> dict[str, Any]:
    from personae.daemon.models.embedder_onnx import PROBES

    texts = [*PROBES, NAMED, UNNAMED]
    reference = embedders["sentence-transformers"].embed(texts)
    samples: dict[str, list[float]] = {k: [] for k in embedders}
    cpu: dict[str, list[float]] = {k: [] for k in embedders}
    for _ in range(repeats):  # interleaved: a burst of load hits every variant alike
        for label, emb in embedders.items():
            for text in (NAMED, UNNAMED):
                # one engine thread runs in the caller's thread: its CPU time is the work
                # itself, what the wall time would be on an idle core
                c, t = time.thread_time(), time.perf_counter()
                emb.embed([text])
                samples[label].append(time.perf_counter() - t)
                cpu[label].append(time.thread_time() - c)
    out = {}
    for label, emb in embedders.items():
        ours = np.stack([emb.embed([t])[0] for t in texts])
        cosines = (ours * reference).sum(axis=1)
        out[label] = {
            **summary(samples[label]),
            "cpu_p50_ms": _perf.median(cpu[label]) * 1e3,
            "min_cosine_to_st": float(cosines.min()),
            "mean_cosine_to_st": float(cosines.mean()),
        }
    return out


def measure(router: Any, cached: Any, scene: list[str], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, text in (("addressed", NAMED), ("similarity", UNNAMED)):
        total, cpu, no_embed, scan = [], [], [], []
        decision = router.route(text, scene)
        real = router._embedder
        for _ in range(repeats):
            c, t = time.thread_time(), time.perf_counter()
            router.route(text, scene)
            total.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            router._embedder = cached
            t = time.perf_counter()
            router.route(text, scene)
            no_embed.append(time.perf_counter() - t)
            router._embedder = real
            t = time.perf_counter()
            router.addressed(text, scene)
            scan.append(time.perf_counter() - t)
        out[label] = {
            "decision": [decision.character, decision.reason],
            "scores_reported": len(decision.scores),
            **summary(total),
            "cpu_p50_ms": _perf.median(cpu) * 1e3,
            "without_embed_p50_ms": _perf.median(no_embed) * 1e3,
            "name_scan_p50_ms": _perf.median(scan) * 1e3,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    from _router_before import LinearRouter

    from personae.daemon.characters import Character
    from personae.daemon.engines.embedder_onnx import OnnxEmbedder
    from personae.daemon.engines.embedder_st import SentenceTransformerEmbedder
    from personae.daemon.models.embedder_onnx import onnx_embedder_dir, source_model_dir
    from personae.daemon.routing.router import Router
    from personae.daemon.settings import Settings
    from personae.daemon.testing.casts import ProfileVectors, synthetic_cast

    info = _perf.machine()
    settings = Settings()
    threads = settings.engine_threads
    st = SentenceTransformerEmbedder.from_settings(settings)
    onnx_dir = onnx_embedder_dir(settings)
    onnx = OnnxEmbedder.from_settings(settings)  # the default: 8-bit weights in blocks
    tmp = Path(tempfile.mkdtemp(prefix="personae-bench-"))
    try:
        embedders = {
            "sentence-transformers": st,
            "torch, direct": LeanTorch(source_model_dir(settings), threads),
            "onnx float32": OnnxEmbedder(model_dir=onnx_dir, threads=threads),
            "onnx int8 dynamic": OnnxEmbedder(
                model_dir=dynamic_int8(onnx_dir, tmp), threads=threads
            ),
            "onnx int8 blocks (default)": onnx,
        }
        print(f"utterance embedding, {threads} thread(s), {args.repeats * 2} per variant")
        embedding = compare_embedders(embedders, args.repeats)
    finally:
        shutil.rmtree(tmp)
    for label, res in embedding.items():
        print(
            f"  {label:<27} p50 {res['p50_ms']:6.2f} ms  p95 {res['p95_ms']:6.2f} ms  "
            f"min {res['min_ms']:6.2f} ms  "
            f"CPU p50 {res['cpu_p50_ms']:6.2f} ms  "
            f"cosine to sentence-transformers min {res['min_cosine_to_st']:.4f}",
            flush=True,
        )

    variants = {"before": (LinearRouter, st), "after": (Router, onnx)}
    results: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        cast = synthetic_cast(size - 1, seed=size)
        cast["mara"] = Character(id="mara", name="Mara Quill", description="The town archivist.")
        scene = list(cast)
        profiles = {"random profiles": None}
        if size == 100:
            profiles["real profiles"] = "real"
        for plabel, kind in profiles.items():
            row: dict[str, Any] = {"size": size, "profiles": plabel}
            for vlabel, (cls, emb) in variants.items():
                profile_embedder = emb if kind else ProfileVectors(emb, seed=size)
                started = time.perf_counter()
                router = cls(embedder=profile_embedder, characters=cast)
                row[vlabel] = {
                    "router": cls.__name__,
                    "embedder": emb.name,
                    "build_s": time.perf_counter() - started,
                    **measure(router, Cached(emb, [NAMED, UNNAMED]), scene, args.repeats),
                }
            results[f"{size} {plabel}"] = row
            b, a = row["before"], row["after"]
            print(
                f"{size:>6} {plabel:<16} before: addressed {b['addressed']['p50_ms']:6.2f} "
                f"similarity {b['similarity']['p50_ms']:6.2f} ms | after: addressed "
                f"{a['addressed']['p50_ms']:5.2f} similarity {a['similarity']['p50_ms']:5.2f} ms "
                f"[{a['addressed']['decision'][0]}]",
                flush=True,
            )
    info["load_avg_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]

    print(f"\nrouting latency p50/p95 (ms), {_perf.describe(info)}")
    print(
        f"{'characters':<24}{'before addr':>14}{'before sim':>14}{'after addr':>14}"
        f"{'after sim':>14}{'after min a/s':>16}{'after CPU a/s':>16}{'w/o embed b/a':>16}"
        f"{'names b/a':>16}"
    )
    for key, row in results.items():
        b, a = row["before"], row["after"]

        def cell(r: dict[str, Any]) -> str:
            return f"{r['p50_ms']:.2f}/{r['p95_ms']:.2f}"

        print(
            f"{key:<24}{cell(b['addressed']):>14}{cell(b['similarity']):>14}"
            f"{cell(a['addressed']):>14}{cell(a['similarity']):>14}"
            f"{a['addressed']['min_ms']:>9.2f}/{a['similarity']['min_ms']:<6.2f}"
            f"{a['addressed']['cpu_p50_ms']:>9.2f}/{a['similarity']['cpu_p50_ms']:<6.2f}"
            f"{b['similarity']['without_embed_p50_ms']:>8.2f}/"
            f"{a['similarity']['without_embed_p50_ms']:<7.2f}"
            f"{b['similarity']['name_scan_p50_ms']:>8.2f}/"
            f"{a['similarity']['name_scan_p50_ms']:<7.2f}"
        )
    print(f"target: at most {TARGET_MS:g} ms at 1,000 characters")
    print(f"load average at end: {info['load_avg_1_5_15_at_end']}")

    def plot(fig) -> None:
        left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        keys = [k for k in results if results[k]["profiles"] == "random profiles"]
        sizes = [results[k]["size"] for k in keys]
        for variant, style in (("before", "--"), ("after", "-")):
            for turn in ("addressed", "similarity"):
                left.plot(
                    sizes,
                    [results[k][variant][turn]["p50_ms"] for k in keys],
                    "o" + style,
                    label=f"{variant}: {turn}",
                )
            left.plot(
                sizes,
                [results[k][variant]["similarity"]["without_embed_p50_ms"] for k in keys],
                "x" + style,
                label=f"{variant}: without the embedding",
            )
        left.axhline(TARGET_MS, color="grey", ls=":", label="target at 1,000")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("characters in the scene")
        left.set_ylabel("ms per turn (p50)")
        left.set_title("routing a turn")
        left.legend(fontsize=7)
        labels = list(embedding)
        bars = right.bar(labels, [embedding[k]["p50_ms"] for k in labels], color="tab:blue")
        for bar, k in zip(bars, labels, strict=True):
            right.annotate(
                f"cos {embedding[k]['min_cosine_to_st']:.3f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        right.axhline(TARGET_MS, color="grey", ls=":")
        right.set_ylabel("ms per utterance (p50)")
        right.set_title(f"MiniLM utterance embedding, {threads} thread")
        right.tick_params(axis="x", labelsize=7, rotation=15)
        load = info["load_avg_1_5_15"][0]
        fig.suptitle(f"routing, {info['cores']} cores, load average {load:.1f} at start")

    _perf.save(
        "routing",
        {"machine": info, "threads": threads, "embedding": embedding, "results": results},
        plot,
    )


if __name__ == "__main__":
    main()
