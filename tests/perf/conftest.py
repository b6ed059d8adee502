"""Shared fixtures for the performance engines: the real base, two adapters trained once."""

from __future__ import annotations

import os

# spinning OpenMP threads make torch several times slower on a busy CPU (see training)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest

from personae.daemon.testing.tiny_adapter import train_tiny_adapter

SMITH = "Aye, the forge burns hot and my hammer is ready."
LIBRARIAN = "Hush now, the old books are sleeping."


@pytest.fixture(scope="session")
def base_dir(settings) -> Path:
    from personae.daemon.models.smollm2 import base_model_dir

    return base_model_dir(settings)


@pytest.fixture(scope="session")
def adapter_dirs(base_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("perf-adapters")
    return {
        "smith": train_tiny_adapter(base_dir, root / "smith", text=SMITH),
        "librarian": train_tiny_adapter(base_dir, root / "librarian", text=LIBRARIAN),
    }
