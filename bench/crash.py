"""Crash test: SIGKILL the daemon again and again while it writes state and memory;
after every restart each write it acknowledged must be there and SQLite's
`PRAGMA integrity_check` must pass.

Each cycle starts a daemon on fake engines on one SQLite file, runs writer sessions
saying "probe <token> ..." lines and asking for replies, and kills the daemon with
SIGKILL at a random moment (the cycle itself is `personae.daemon.testing.crashing`,
which tests/reliability/test_crash.py runs twice).

    personae bench crash [--cycles 20] [--writers 6] [--real] [--out bench/results/crash.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from personae.daemon.testing.crashing import run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--writers", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--real", action="store_true", help="the embedded engines (LLM on llama.cpp), not fakes"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "crash.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="personae-crash-") as tmp:
        start = time.monotonic()
        window = (1.0, 6.0) if args.real else (0.5, 2.0)  # real replies take longer
        report = asyncio.run(
            run(args.cycles, args.writers, Path(tmp), args.seed, window, real=args.real)
        )
        report["wall_s"] = round(time.monotonic() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    ok = not report["missing"] and not report["integrity_failures"]
    print(
        f"{report['cycles']} SIGKILLs, {report['acknowledged']} acknowledged turns, "
        f"{len(report['missing'])} missing, {report['integrity_failures']} integrity failures "
        f"-> {'PASS' if ok else 'FAIL'} ({args.out})"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
