"""Long fuzz run of the session: thousands of random and mutated frame sequences through
a real RealtimeSession on fake engines (`personae.daemon.testing.fuzzing`, the checks
of tests/reliability/test_fuzz.py).

    personae bench fuzz [--examples 2000] [--out bench/results/fuzz.json]

The decoder fuzzers run long with: PERSONAE_FUZZ_EXAMPLES=5000 pytest tests/reliability/test_fuzz.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personae.daemon.testing import fuzzing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fuzz.json")
    args = ap.parse_args()
    svc = fuzzing.fuzz_service(Path(tempfile.mkdtemp(prefix="personae-fuzz-")))
    totals: Counter = Counter()
    codes: Counter = Counter()
    failures: list[str] = []

    @settings(
        max_examples=args.examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(fuzzing.frame_lists, st.sampled_from([0.0, 0.0, 0.05, 0.3]))
    def run(frames, linger) -> None:
        totals["sequences"] += 1
        totals["frames"] += len(frames)
        try:
            events, code = asyncio.run(fuzzing.run_frames(svc, frames, linger))
            fuzzing.check_session(events, code)
        except Exception as exc:  # recorded with its frames, the run goes on
            failures.append("".join(traceback.format_exception(exc))[-2000:] + repr(frames))
            return
        totals["events"] += len(events)
        totals["responses"] += sum(e.type == "response.created" for e in events)
        codes.update(e.error.code for e in events if e.type == "error")
        codes[f"close_{code}"] += 1

    start = time.monotonic()
    run()
    wall = time.monotonic() - start
    svc.close()
    report = {
        **totals,
        "failures": len(failures),
        "wall_s": round(wall, 1),
        "outcomes": dict(codes.most_common()),
        "first_failures": failures[:3],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "first_failures"}, indent=2))
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
