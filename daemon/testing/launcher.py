"""A real daemon process on 127.0.0.1 for tests and benchmarks: started, awaited, stopped.

    with Daemon(state_dir=tmp, fakes=FakeEngines(voices=True)) as d:
        connect(d.ws) ...

The daemon runs `personae serve` (through `personae.daemon.testing.serve`) on a free
port chosen once, so a restarted daemon answers where the first one did. Its state
(database, adapter store, keys) lives in `state_dir` unless `settings` name it, so it
never writes into the user's state nor reads what an earlier run left there (memories
would lengthen every prompt). The prepared models are shared.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True, kw_only=True)
class FakeEngines:
    """A daemon on fake engines (`fakes.register_fakes`): VAD, STT and router embedder
    always; the LLM `fake` (echoes probe tokens) unless settings name another
    (`echo`, or a real one)."""

    #: the cast's piper, espeak and kokoro voices spoken by the fake TTS
    voices: bool = True
    token_delay_s: float = 0.0
    tts_ms_per_char: float = 60.0
    #: replies the fake LLM generates at once (0 = any number)
    llm_parallel: int = 0

    def argv(self) -> list[str]:
        out = ["--fakes", "--token-delay-s", str(self.token_delay_s)]
        out += ["--tts-ms-per-char", str(self.tts_ms_per_char)]
        out += ["--llm-parallel", str(self.llm_parallel)]
        return [*out, "--fake-voices"] if self.voices else out

    def settings(self) -> dict[str, object]:
        return {
            "vad_engine": "fake",
            "stt_engine": "fake",
            "embedder_engine": "fake",
            "llm_engine": "fake",
            "warmup": False,
            # turns end by the silence rules alone: tones are no speech to Smart Turn
            "end_of_turn_model": False,
        }


def setting_env(name: str, value: object) -> tuple[str, str]:
    """A settings field as the environment variable pydantic-settings reads."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple):
        text = json.dumps([str(v) for v in value])
    elif isinstance(value, dict):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return f"PERSONAE_{name.upper()}", text


@dataclass(kw_only=True)
class Daemon:
    """One daemon process; `start()` / `stop()` / `kill()` it as often as needed."""

    #: its log files, and its state unless `settings` name other places
    state_dir: Path
    #: fake engines, or None for the real ones `personae serve` loads
    fakes: FakeEngines | None = None
    #: Settings fields ("audio_lead_ms": 0), passed as PERSONAE_* variables
    settings: Mapping[str, object] = field(default_factory=dict)
    #: any other environment for the process
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    http = url

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    @property
    def log(self) -> Path:
        return self.state_dir / f"daemon-{self.port}-{self.starts}.log"

    def environment(self) -> dict[str, str]:
        state = {
            "database_url": f"sqlite:///{self.state_dir / 'personae.db'}",
            "adapters_dir": self.state_dir / "adapters",
            "keys_file": self.state_dir / "keys.json",
            **(self.fakes.settings() if self.fakes else {}),
            "host": "127.0.0.1",
            "port": self.port,
            **self.settings,
        }
        return {
            **os.environ,
            "HF_HUB_OFFLINE": "1",  # never a download at run time
            "TOKENIZERS_PARALLELISM": "false",
            **dict(setting_env(k, v) for k, v in state.items()),
            **self.env,
        }

    def launch(self) -> Daemon:
        """Start the process without waiting (do other set-up while it loads)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"daemon on port {self.port} already running")
        self.starts += 1
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "personae.daemon.testing.serve"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*argv, *(self.fakes.argv() if self.fakes else [])],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment(),
            )
        return self

    def wait_ready(self, timeout: float = 240) -> Daemon:
        """Until /healthz answers 200; a process that exits or never answers raises
        with the end of its log."""
        if self.process is None:
            raise RuntimeError("launch() first")
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.process.returncode}:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"daemon not up after {timeout} s:\n{self._log_tail()}")
            time.sleep(0.25)

    def start(self, timeout: float = 240) -> Daemon:
        return self.launch().wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL: no goodbye on open connections, as when a host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: the daemon closes its sessions and store."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
