"""Shared fixtures. Tests never reach a model hub: everything loads from installed packages."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def settings():
    """Default settings: the embedded models, prepared in the usual cache directory."""
    from personae.daemon.settings import Settings

    return Settings()
