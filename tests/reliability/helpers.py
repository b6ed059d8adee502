"""Fake-engine services and a real uvicorn on 127.0.0.1 for the reliability tests."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from personae.daemon.process import free_port
from personae.daemon.service import Service
from tests.session.harness import fake_service


def service(tmp: Path, **settings: Any) -> Service:
    """A fake-engine service with its own database and keys file under `tmp`."""
    defaults: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp / 'state.db'}",
        "keys_file": tmp / "keys.json",
        "cache_dir": tmp / "cache",
    }
    return fake_service(**{**defaults, **settings})


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn on 127.0.0.1 in a thread; yields "host:port"."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 20
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def receive(ws: Any, timeout: float = 10) -> dict[str, Any]:
    frame = ws.recv(timeout=timeout)
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)


def send(ws: Any, event: dict[str, Any]) -> None:
    ws.send(msgpack.packb(event))


def until(ws: Any, type_: str, timeout: float = 10) -> dict[str, Any]:
    """Events up to the first of `type_` (which is returned); errors fail the test."""
    while True:
        event = receive(ws, timeout)
        if event["type"] == type_:
            return event
        if event["type"] == "error":
            raise AssertionError(event)


def say(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"content": [{"type": "input_text", "text": text}]},
    }


@contextlib.asynccontextmanager
async def running_guarded(
    svc: Service, guard: Any = None, framing: Any = None, *, check_leaks: bool = True
) -> Any:
    """`tests.session.harness.running`, for a session that answers to `guard`."""
    import asyncio

    from personae.daemon.session.session import RealtimeSession, SessionClosed
    from personae.sdk.framing import Framing
    from tests.session.harness import Harness

    h = Harness(svc, framing or Framing.MSGPACK)
    h.session = RealtimeSession(svc, receive=h._receive, send=h._send, guard=guard)
    task = asyncio.create_task(h.session.run(), name="session")
    h.session_task_done = task.done  # type: ignore[attr-defined]
    h.session_task = task  # type: ignore[attr-defined]
    try:
        await h.wait_type("session.created")
        yield h
    finally:
        h._in.put_nowait(None)
        try:
            async with asyncio.timeout(5):
                await task
        except SessionClosed as exc:
            h.closed = exc
        if check_leaks:
            assert_no_leaked_tasks()


def assert_no_leaked_tasks() -> None:
    import asyncio

    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leftovers, f"leaked tasks: {[t.get_name() for t in leftovers]}"
