"""Routing latency with 10, 100, 1,000 and 10,000 characters in the scene.

The router embeds every profile once, when the cast loads; a turn embeds only the
utterance (real MiniLM, the embedded default), scores the scene with one matrix
product and scans the utterance for names. Profiles here are random unit vectors:
embedding 10,000 profiles takes minutes on 2 cores and does not change the per-turn
work (the real profiles' embeddings are compared at 100 characters to show it).

Measured per turn, side by side: an utterance that names a character ("addressed") and
one that does not ("similarity"), each broken into the utterance embedding, the
scoring and the name scan.

    personae bench routing [--sizes 10,100,1000,10000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _perf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMED = "Hey Mara, where can I find an old map of the river?"
UNNAMED = "Where can I find an old map of the river?"


def measure(router: Any, embedder: Any, scene: list[str], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, text in (("addressed", NAMED), ("similarity", UNNAMED)):
        total, embed, scan = [], [], []
        for _ in range(repeats):
            t = time.perf_counter()
            decision = router.route(text, scene)
            total.append(time.perf_counter() - t)
            t = time.perf_counter()
            embedder.embed([text])
            embed.append(time.perf_counter() - t)
            t = time.perf_counter()
            router.addressed(text, scene)
            scan.append(time.perf_counter() - t)
        out[label] = {
            "decision": [decision.character, decision.reason],
            "p50_ms": _perf.median(total) * 1e3,
            "p95_ms": _perf.pct(total, 0.95) * 1e3,
            "embed_p50_ms": _perf.median(embed) * 1e3,
            "name_scan_p50_ms": _perf.median(scan) * 1e3,
            "without_embed_p50_ms": (_perf.median(total) - _perf.median(embed)) * 1e3,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10,100,1000,10000")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    from personae.daemon.characters import Character
    from personae.daemon.engines.embedder_st import SentenceTransformerEmbedder
    from personae.daemon.session.router import Router
    from personae.daemon.settings import Settings
    from tests.perf.routing_cast import ProfileVectors, synthetic_cast

    info = _perf.machine()
    embedder = SentenceTransformerEmbedder.from_settings(Settings())
    embedder.embed(["warm up"])
    results: dict[str, Any] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        cast = synthetic_cast(size - 1, seed=size)
        cast["mara"] = Character(id="mara", name="Mara Quill", description="The town archivist.")
        scene = list(cast)
        configs = {"random profiles": ProfileVectors(embedder, seed=size)}
        if size == 100:
            configs["real profiles"] = embedder
        for label, profile_embedder in configs.items():
            started = time.perf_counter()
            router = Router(embedder=profile_embedder, characters=cast)
            build = time.perf_counter() - started
            res = measure(router, embedder, scene, args.repeats)
            res["build_s"] = build
            results[f"{size} {label}"] = {"size": size, "profiles": label, **res}
            print(
                f"{size:>6} {label:<16} addressed p50 {res['addressed']['p50_ms']:6.2f} ms "
                f"(embed {res['addressed']['embed_p50_ms']:5.2f}, names "
                f"{res['addressed']['name_scan_p50_ms']:5.2f})  similarity p50 "
                f"{res['similarity']['p50_ms']:6.2f} ms  [{res['addressed']['decision'][0]}]",
                flush=True,
            )
    print(f"\nrouting latency (ms), {_perf.describe(info)}")
    print(
        f"{'characters':<28}{'addressed p50/p95':>20}{'similarity p50/p95':>21}"
        f"{'utterance embed':>17}{'name scan':>11}{'route - embed':>15}"
    )
    for key, res in results.items():
        a, s = res["addressed"], res["similarity"]
        print(
            f"{key:<28}{a['p50_ms']:>11.2f}/{a['p95_ms']:<8.2f}{s['p50_ms']:>12.2f}/{s['p95_ms']:<8.2f}"
            f"{a['embed_p50_ms']:>17.2f}{a['name_scan_p50_ms']:>11.2f}{a['without_embed_p50_ms']:>15.2f}"
        )
    print("target: at most 5 ms at 1,000 characters")

    def plot(fig) -> None:
        ax = fig.add_subplot()
        keys = [k for k in results if results[k]["profiles"] == "random profiles"]
        sizes = [results[k]["size"] for k in keys]
        for path, label in (
            (("addressed", "p50_ms"), "addressed, whole route"),
            (("similarity", "p50_ms"), "similarity, whole route"),
            (("addressed", "embed_p50_ms"), "utterance embedding"),
            (("addressed", "name_scan_p50_ms"), "name scan"),
        ):
            ax.plot(sizes, [results[k][path[0]][path[1]] for k in keys], "o-", label=label)
        ax.axhline(5, color="grey", ls=":", label="target at 1,000")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("characters in the scene")
        ax.set_ylabel("ms per turn (p50)")
        ax.set_title(f"routing latency, MiniLM utterance embedding ({info['cores']} cores, loaded)")
        ax.legend()

    _perf.save("routing", {"machine": info, "results": results}, plot)


if __name__ == "__main__":
    main()
