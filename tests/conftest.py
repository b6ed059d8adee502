"""Shared fixtures. Tests never reach a model hub: everything loads from installed packages."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads must not spin
# replies are compared with float32 CPU references; the GPU tests place engines themselves
os.environ.setdefault("PERSONAE_LLM_DEVICE", "cpu")

import pytest


@pytest.fixture(scope="session")
def settings():
    """Default settings: the embedded models, prepared in the usual cache directory."""
    from personae.daemon.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    """One real daemon for the whole run: embedded models, default cast, real socket."""
    from personae.daemon.testing.launcher import Daemon

    # reply audio paced close to real time, so even a short reply is still playing
    # when a barge-in test talks over it
    state = tmp_path_factory.mktemp("daemon")
    with Daemon(state_dir=state, settings={"audio_lead_ms": 300}) as d:
        yield d
