"""Priming under load: players talking at once, each to a character with its adapter.

After a reply has gone out the daemon prefills its speaker's next prompt (priming), so
the next turn computes only the new context and the player's words. With one player
that is free time. With several, one player's priming competes with another's reply on
the one model, and a prime that takes the model for a whole prompt makes every reply
that arrives meanwhile wait for it. Compared in one run, each on a fresh transformers
engine (the default):

- no priming:       each reply prefills what the prefix cache does not hold;
- prime at once:    the whole next prompt in one forward, not started while a reply is
                    in flight, but run to its end once started;
- prime in pieces:  32 tokens per forward, giving the model up to any reply that
                    arrives, and keeping what was computed (the daemon's default).

Each player is a thread doing what a client and the session do: a reply streams, the
player still hears its last `--tail` seconds, priming starts, and the player's next
line arrives `--think` seconds later (speaking, end of turn, transcription). Schedules
are seeded, so every strategy sees the same ones. Reports time to first token, the
longest gap between two tokens of a reply (a stall the player hears as a pause once
the audio lead runs out), and how primes ended.

    personae bench priming_load [--players 1,2,4] [--turns 12] [--max-tokens 24] [--pieces 64]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import threading
import time
from typing import Any

import _perf
from conversation import PLAYER, context

STRATEGIES = ["no priming", "prime at once", "prime in pieces"]
CAST = ["bram", "mara", "wren"]


def player(
    engine: Any, who: int, strategy: str, args: argparse.Namespace, rows: list[dict]
) -> None:
    from personae.daemon.characters import GenerationParams
    from personae.daemon.characters.loader import default_cast_dir, load_cast
    from personae.daemon.engines.base import GenerationRequest
    from personae.daemon.session.prompt import Turn, build_messages

    ch = load_cast([default_cast_dir()])[CAST[who % len(CAST)]]
    params = GenerationParams(
        temperature=0.0, max_tokens=args.max_tokens, repetition_penalty=1.1, stop=("\n",)
    )
    rng = random.Random(who)
    time.sleep(rng.uniform(0, args.think))  # players do not start in step
    history: list[Turn] = []
    primer: threading.Thread | None = None
    for turn in range(args.turns):
        line = PLAYER[(turn + 3 * who) % len(PLAYER)].replace("Bram", ch.name)
        history.append(Turn("player", line))
        messages = build_messages(ch, history, max_turns=args.history_turns, context=context(turn))
        before = time.perf_counter()
        stamps: list[float] = []
        text = ""
        for delta in engine.generate(
            GenerationRequest(messages, params, adapter=ch.id), threading.Event()
        ):
            stamps.append(time.perf_counter())
            text += delta
        end = time.perf_counter()
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        rows.append(
            {
                "player": who,
                "turn": turn + 1,
                "ttft_ms": ((stamps[0] if stamps else end) - before) * 1e3,
                "stall_ms": max(gaps, default=0.0) * 1e3,
                "tokens": len(stamps),
                "at_s": before,
            }
        )
        history.append(Turn(ch.id, text.strip() or "Hm."))
        time.sleep(args.tail)  # the reply's last audio is still going out
        if primer is not None:
            primer.join()
        if strategy != "no priming":
            ahead = build_messages(ch, history, max_turns=args.history_turns)
            request = GenerationRequest(ahead, params, adapter=ch.id)
            primer = threading.Thread(target=engine.prime, args=(request,), daemon=True)
            primer.start()
        time.sleep(rng.uniform(0.5 * args.think, 1.5 * args.think))
    if primer is not None:
        primer.join()


def make_engine(strategy: str) -> Any:
    from personae.daemon.characters.loader import default_cast_dir
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.daemon.models.smollm2 import base_model_dir
    from personae.daemon.settings import Settings

    engine = TransformersLLM(model_dir=base_model_dir(Settings()), prefix_cache_tokens=8192)
    if strategy == "prime at once":
        engine.prime_chunk_tokens = None
    elif strategy.startswith("prime in pieces of "):
        engine.prime_chunk_tokens = int(strategy.rsplit(" ", 1)[1])
    for cid in CAST:
        engine.load_adapter(cid, default_cast_dir() / "adapters" / cid / "v1")
    engine.warmup()
    return engine


def run(players: int, strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = make_engine(strategy)
    rows: list[dict] = []
    started = time.perf_counter()
    threads = [
        threading.Thread(target=player, args=(engine, i, strategy, args, rows))
        for i in range(players)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    later = [r for r in rows if r["turn"] > 1]
    tokens = engine.prompt_tokens()
    out = {
        "ttft_p50_ms": _perf.median([r["ttft_ms"] for r in later]),
        "ttft_p95_ms": _perf.pct([r["ttft_ms"] for r in later], 0.95),
        "stall_p50_ms": _perf.median([r["stall_ms"] for r in rows]),
        "stall_p95_ms": _perf.pct([r["stall_ms"] for r in rows], 0.95),
        "computed_per_turn": tokens["computed"] / max(1, len(rows)),
        "primes": engine.primes(),
        "wall_s": time.perf_counter() - started,
        "rows": rows,
    }
    primes = out["primes"]
    print(
        f"  {players} players / {strategy:<16} TTFT p50 {out['ttft_p50_ms']:5.0f} "
        f"p95 {out['ttft_p95_ms']:5.0f} ms | longest gap p50 {out['stall_p50_ms']:4.0f} "
        f"p95 {out['stall_p95_ms']:5.0f} ms | {out['computed_per_turn']:4.0f} prompt tokens "
        f"computed a turn | primes whole {primes['whole']}, yielded {primes['yielded']}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--players", default="1,2,4")
    ap.add_argument("--turns", type=int, default=12, help="turns per player")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--history-turns", type=int, default=4, help="the window, in exchanges")
    ap.add_argument("--tail", type=float, default=0.8, help="s of reply audio after its end")
    ap.add_argument("--think", type=float, default=2.0, help="s from priming to the next line")
    ap.add_argument(
        "--pieces",
        type=lambda s: [int(n) for n in s.split(",") if n],
        default=[],
        help="also prime in pieces of these sizes (tokens), e.g. 64,128",
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # the daemon's default on this machine (engine_threads)
    info = _perf.machine()
    print(f"priming under load, {_perf.describe(info)}")
    results: dict[str, dict[str, Any]] = {}
    for players in [int(n) for n in args.players.split(",")]:
        strategies = STRATEGIES + [f"prime in pieces of {n}" for n in args.pieces]
        results[str(players)] = {s: run(players, s, args) for s in strategies}

    print(f"\n{'players / strategy':<30}{'TTFT p50':>9}{'p95':>7}{'gap p50':>9}{'p95':>7}")
    for players, by in results.items():
        for strategy, s in by.items():
            print(
                f"{players + ' / ' + strategy:<30}{s['ttft_p50_ms']:>9.0f}{s['ttft_p95_ms']:>7.0f}"
                f"{s['stall_p50_ms']:>9.0f}{s['stall_p95_ms']:>7.0f}"
            )

    def plot(fig) -> None:
        ttft, gap = fig.subplots(1, 2)
        counts = list(results)
        strategies = list(next(iter(results.values())))
        width = 0.8 / len(strategies)
        for i, strategy in enumerate(strategies):
            xs = [j + (i - (len(strategies) - 1) / 2) * width for j in range(len(counts))]
            for ax, key in ((ttft, "ttft"), (gap, "stall")):
                bars = ax.bar(
                    xs,
                    [results[c][strategy][f"{key}_p50_ms"] for c in counts],
                    width,
                    label=strategy,
                )
                ax.scatter(
                    xs,
                    [results[c][strategy][f"{key}_p95_ms"] for c in counts],
                    marker="_",
                    s=300,
                    color=bars.patches[0].get_facecolor(),
                )
        for ax, title in ((ttft, "time to first token"), (gap, "longest gap between tokens")):
            ax.set_xticks(range(len(counts)), [f"{c} player{'s' * (c != '1')}" for c in counts])
            ax.set_ylabel("ms (bar p50, tick p95)")
            ax.set_title(title)
        ttft.legend(fontsize=8)
        fig.suptitle(f"priming under load ({info['cores']} cores, one torch thread)")

    _perf.save("priming_load", {"machine": info, "args": vars(args), "results": results}, plot)


if __name__ == "__main__":
    sys.exit(main())
