"""A real daemon process on fake engines (personae.daemon.testing): the protocol, the
orchestration and the store under load, without models.

    python bench/fake_daemon.py --port 8765 [--database-url sqlite:///x.db] [--token-delay-s 0.01]

The reply echoes the `probe` token of the player's last line ("probe abc123" →
"Heard abc123. ..."), so a client can tell its own replies from anyone else's.
Used by bench/load.py and bench/crash.py (and tests/reliability/test_crash.py).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROBE = re.compile(r"probe ([0-9a-z_-]+)")


def echo_probe(request) -> str:
    user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    found = PROBE.findall(user)
    token = found[-1] if found else "nothing"
    return f"Heard {token}. Come back tomorrow, friend."


def build_app(args: argparse.Namespace):
    from personae.daemon.app import create_app
    from personae.daemon.characters import default_cast_dir, load_cast
    from personae.daemon.service import Engines, Service
    from personae.daemon.settings import Settings
    from personae.daemon.testing import FakeEmbedder, FakeLLM, FakeSTT, FakeTTS, FakeVAD

    overrides = {
        "host": args.host,
        "port": args.port,
        "warmup": False,
        "audio_lead_ms": args.audio_lead_ms,
        "max_sessions": args.max_sessions,
        "max_sessions_per_key": args.max_sessions,
        "rate_per_s": 1000.0,
        "rate_burst": 1000,
    }
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.cache_dir:
        overrides["cache_dir"] = Path(args.cache_dir)
    settings = Settings(**overrides)
    tts = FakeTTS(ms_per_char=args.tts_ms_per_char)
    engines = Engines(
        vad=FakeVAD(),
        stt=FakeSTT(text_for=lambda audio: "probe spoken"),
        embedder=FakeEmbedder(),
        llm=FakeLLM(reply=echo_probe, token_delay_s=args.token_delay_s),
        tts={"piper": tts, "espeak": tts},
    )
    service = Service.create(settings, engines=engines, cast=load_cast([default_cast_dir()]))
    return create_app(settings, service=service), settings


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--token-delay-s", type=float, default=0.01)
    ap.add_argument("--tts-ms-per-char", type=float, default=60.0)
    ap.add_argument("--audio-lead-ms", type=int, default=1000)
    ap.add_argument("--max-sessions", type=int, default=256)
    args = ap.parse_args(argv)
    import uvicorn

    app, settings = build_app(args)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ws_max_size=settings.max_frame_bytes,
        log_level="warning",
    )


# ---------------------------------------------------------------------- as a child process


@dataclass
class FakeDaemon:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], *, log: Path, timeout: float = 60) -> FakeDaemon:
    """Start a fake daemon and wait until /healthz answers."""
    port = free_port()
    out = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--port", str(port), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    daemon = FakeDaemon(port, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"fake daemon exited with {proc.returncode}; see {log}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{daemon.http}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return daemon
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"fake daemon not up after {timeout} s; see {log}")
        time.sleep(0.1)


@contextlib.contextmanager
def running(args: list[str], *, log: Path) -> Iterator[FakeDaemon]:
    daemon = start(args, log=log)
    try:
        yield daemon
    finally:
        if daemon.process.poll() is None:
            daemon.process.send_signal(signal.SIGINT)
            try:
                daemon.process.wait(15)
            except subprocess.TimeoutExpired:
                daemon.process.kill()
                daemon.process.wait()


if __name__ == "__main__":
    main()
