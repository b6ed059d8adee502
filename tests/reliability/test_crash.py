"""SIGKILL the daemon while it writes; every acknowledged write survives, the database
passes its integrity check. The long run is `personae bench crash` (bench/crash.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from personae.daemon.testing.crashing import run


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    report = asyncio.run(run(2, 3, tmp_path, seed=7, kill_window=(0.4, 0.9)))
    assert report["integrity_failures"] == 0
    assert report["missing"] == []
    assert report["acknowledged"] > 0  # the kill really came while turns were acknowledged
    assert report["turns_in_db"] >= 2 * report["acknowledged"]
