"""SIGKILL the daemon while it writes; every acknowledged write survives, the database
passes its integrity check. The long run is `personae bench crash` (bench/crash.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_crash():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("personae_bench_crash", BENCH / "crash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    crash = load_crash()
    report = asyncio.run(crash.run(2, 3, tmp_path, seed=7, kill_window=(0.4, 0.9)))
    assert report["integrity_failures"] == 0
    assert report["missing"] == []
    assert report["acknowledged"] > 0  # the kill really came while turns were acknowledged
    assert report["turns_in_db"] >= 2 * report["acknowledged"]
