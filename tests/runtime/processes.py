"""Run tests/runtime/worker.py in fresh interpreters (not a test module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str, seed: str = "0") -> subprocess.Popen[str]:
    """`python -m tests.runtime.worker ARGS` with its own PYTHONHASHSEED."""
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen[str]) -> object:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out)


def run(*args: str, seed: str = "0") -> object:
    return result(start(*args, seed=seed))
