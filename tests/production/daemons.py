"""Daemon processes for these tests: started on a chosen port, killed, started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from personae.daemon.process import free_port

ROOT = Path(__file__).resolve().parents[2]

#: the stand-in engines of tests.production.serve, for everything but the LLM
FAST_ENGINES = {
    "PERSONAE_VAD_ENGINE": "fake",
    "PERSONAE_STT_ENGINE": "fake",
    "PERSONAE_EMBEDDER_ENGINE": "fake",
    "PERSONAE_WARMUP": "0",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass
class Daemon:
    """`python -m tests.production.serve` on 127.0.0.1:`port` (the same port across restarts)."""

    log_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_dir / f"daemon-{self.port}-{self.starts}.log"

    def start(self, timeout: float = 180) -> Daemon:
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> Daemon:
        """Start the process without waiting (do other set-up while it loads)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        environment = {
            **os.environ,
            **FAST_ENGINES,
            "PERSONAE_HOST": "127.0.0.1",
            "PERSONAE_PORT": str(self.port),
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.production.serve"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        return self

    def wait_ready(self, timeout: float = 180) -> Daemon:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"daemon not up after {timeout} s:\n{self.log.read_text()}")
            time.sleep(0.25)

    def kill(self) -> None:
        """SIGKILL: no goodbye on open connections, as when a host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
