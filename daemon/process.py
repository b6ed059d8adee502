"""Start a real daemon process on 127.0.0.1 and wait until it serves (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LiveDaemon:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/realtime"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_daemon(
    log_dir: Path, *, env: dict[str, str] | None = None, timeout: float = 240
) -> Iterator[LiveDaemon]:
    """A daemon of its own: its state (database, adapter store, keys) lives in `log_dir`
    unless `env` names it, so tests and benchmarks never write into the user's state and
    never read what an earlier run left there (memories would lengthen every prompt).
    The prepared models are shared."""
    port = free_port()
    log = log_dir / f"daemon-{port}.log"
    state = log_dir / f"state-{port}"
    state.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PERSONAE_PORT": str(port),
        "PERSONAE_DATABASE_URL": f"sqlite:///{state / 'personae.db'}",
        "PERSONAE_ADAPTERS_DIR": str(state / "adapters"),
        "PERSONAE_KEYS_FILE": str(state / "keys.json"),
        **(env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "personae.sdk.cli", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    daemon = LiveDaemon("127.0.0.1", port, proc, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(f"{daemon.http}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"daemon not up after {timeout} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield daemon
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
