"""Push client frames into a RealtimeSession and collect the events it sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.service import Engines, Service
from personae.daemon.session.session import RealtimeSession, SessionClosed
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeEmbedder, FakeLLM, FakeSTT, FakeTTS, FakeVAD
from personae.sdk import protocol as p
from personae.sdk.framing import Framing, encode


def fake_service(
    *,
    llm: FakeLLM | None = None,
    stt: FakeSTT | None = None,
    tts: FakeTTS | None = None,
    **settings: object,
) -> Service:
    import tempfile

    # every fake service gets its own database file: tests never share state
    db = Path(tempfile.mkdtemp(prefix="personae-test-")) / "state.db"
    defaults: dict[str, object] = {
        "audio_lead_ms": 0,
        "vad_silence_ms": 300,
        "vad_min_speech_ms": 64,
        "database_url": f"sqlite:///{db}",
        # a developer's own keys file must not switch these tests into key mode
        "keys_file": db.parent / "keys.json",
    }
    defaults.update(settings)
    # the default cast without its adapters: fake LLMs ignore weights, and tests that
    # are about adapters give their characters the ones they need
    cast = {
        cid: ch.model_copy(update={"adapter": None})
        for cid, ch in load_cast([default_cast_dir()]).items()
    }
    tts = tts or FakeTTS()
    engines = Engines(
        vad=FakeVAD(),
        stt=stt or FakeSTT(),
        embedder=FakeEmbedder(),
        llm=llm or FakeLLM(),
        tts={"piper": tts, "espeak": tts},
    )
    return Service.create(Settings(**defaults), engines=engines, cast=cast)


class Harness:
    def __init__(self, service: Service, framing: Framing = Framing.MSGPACK) -> None:
        self.service = service
        self.framing = framing
        self._in: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.events: list[p.ServerEvent] = []
        self._new = asyncio.Condition()
        self.closed: SessionClosed | None = None
        self.session = RealtimeSession(service, receive=self._receive, send=self._send)

    async def _receive(self) -> str | bytes:
        frame = await self._in.get()
        if frame is None:
            raise SessionClosed(1000, "client closed")
        return frame

    async def _send(self, event: p.ServerEvent) -> None:
        async with self._new:
            self.events.append(event)
            self._new.notify_all()

    def send(self, event: p.ClientEvent | str | bytes) -> None:
        self._in.put_nowait(
            event if isinstance(event, str | bytes) else encode(event, self.framing)
        )

    async def wait_for(
        self, predicate: Callable[[p.ServerEvent], bool], timeout: float = 10.0
    ) -> p.ServerEvent:
        async with asyncio.timeout(timeout), self._new:
            seen = 0
            while True:
                for e in self.events[seen:]:
                    if predicate(e):
                        return e
                seen = len(self.events)
                await self._new.wait()

    async def wait_type(
        self, type_: str, timeout: float = 10.0, *, after: int = 0
    ) -> p.ServerEvent:
        start = after
        return await self.wait_for(
            lambda e: e.type == type_ and self.events.index(e) >= start, timeout
        )

    def of_type(self, type_: str) -> list[p.ServerEvent]:
        return [e for e in self.events if e.type == type_]


@contextlib.asynccontextmanager
async def running(service: Service, framing: Framing = Framing.MSGPACK) -> AsyncIterator[Harness]:
    h = Harness(service, framing)
    task = asyncio.create_task(h.session.run(), name="session")
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
        # every task the session started must be gone
        leftovers = [
            t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
        ]
        assert not leftovers, f"leaked tasks: {[t.get_name() for t in leftovers]}"


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """Run an app under a real uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import threading

    import uvicorn

    from personae.daemon.process import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 20)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        async_deadline = 200
        while not server.started and async_deadline:
            import time

            time.sleep(0.05)
            async_deadline -= 1
        assert server.started, "uvicorn did not start"
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
