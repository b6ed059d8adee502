"""Push client frames into a RealtimeSession and collect the events it sends.

    svc = fake_service(llm=FakeLLM(reply=lambda req: "Aye."))
    async with running(svc) as h:
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")

`running` fails on any task the session leaves behind. `served` runs an app under a
real uvicorn in a thread, for tests over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.service import Engines, Service
from personae.daemon.session.end_of_turn import EndOfTurnModel
from personae.daemon.session.session import RealtimeSession, SessionClosed
from personae.daemon.settings import Settings
from personae.daemon.testing.fakes import FakeEmbedder, FakeLLM, FakeSTT, FakeTTS, FakeVAD
from personae.daemon.testing.launcher import free_port
from personae.sdk import protocol as p
from personae.sdk.framing import Framing, encode


def fake_service(
    *,
    state_dir: Path | None = None,
    llm: FakeLLM | None = None,
    stt: FakeSTT | None = None,
    tts: FakeTTS | None = None,
    end_of_turn: EndOfTurnModel | None = None,
    **settings: object,
) -> Service:
    """A Service on fake engines and the default cast (without its adapters: fake LLMs
    ignore weights, and tests about adapters give their characters the ones they need).

    Its database, keys file and cache live in `state_dir`, a fresh temporary folder by
    default, so services never share state; `settings` override any Settings field.
    """
    state = state_dir or Path(tempfile.mkdtemp(prefix="personae-test-"))
    defaults: dict[str, object] = {
        "audio_lead_ms": 0,
        "vad_silence_ms": 300,
        "vad_min_speech_ms": 64,
        # tests count prime calls: a scene warm-up is asked for where it is tested
        "llm_warm_scene_max": 0,
        "database_url": f"sqlite:///{state / 'state.db'}",
        # a developer's own keys file must not switch these tests into key mode
        "keys_file": state / "keys.json",
    }
    if state_dir is not None:
        defaults["cache_dir"] = state / "cache"
    defaults.update(settings)
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
        tts={"piper": tts, "espeak": tts, "kokoro": tts},
        end_of_turn=end_of_turn,
    )
    return Service.create(Settings(**defaults), engines=engines, cast=cast)


class Harness:
    """One session fed from a queue; every event it sends is kept in `events`."""

    def __init__(
        self, service: Service, framing: Framing = Framing.MSGPACK, *, guard: Any = None
    ) -> None:
        self.service = service
        self.framing = framing
        self._in: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.events: list[p.ServerEvent] = []
        self._new = asyncio.Condition()
        self.closed: SessionClosed | None = None
        self.task: asyncio.Task[None] | None = None
        self.session = RealtimeSession(service, receive=self._receive, send=self._send, guard=guard)

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

    def leave(self) -> None:
        """The client goes away: the session's next receive raises SessionClosed(1000)."""
        self._in.put_nowait(None)

    def done(self) -> bool:
        """Whether the session has ended."""
        return self.task is not None and self.task.done()

    async def wait_done(self, timeout: float = 10.0) -> None:
        """Until the session ends (its outcome stays with `running`)."""
        if self.task is None:
            raise RuntimeError("the session was not started")
        async with asyncio.timeout(timeout):
            await asyncio.wait({self.task})

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
async def running(
    service: Service,
    framing: Framing = Framing.MSGPACK,
    *,
    guard: Any = None,
    check_leaks: bool = True,
    close_timeout: float = 5.0,
) -> AsyncIterator[Harness]:
    """A started session (after its `session.created`); on exit the client leaves, the
    session must end within `close_timeout`, and (with `check_leaks`) no task it
    started may be left. A SessionClosed it ends with is kept in `h.closed`."""
    h = Harness(service, framing, guard=guard)
    h.task = asyncio.create_task(h.session.run(), name="session")
    try:
        await h.wait_type("session.created")
        yield h
    finally:
        h.leave()
        try:
            async with asyncio.timeout(close_timeout):
                await h.task
        except SessionClosed as exc:
            h.closed = exc
        if check_leaks:
            assert_no_leaked_tasks()


def assert_no_leaked_tasks() -> None:
    """Every task but the caller's has ended."""
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    if leftovers:
        raise AssertionError(f"leaked tasks: {[t.get_name() for t in leftovers]}")


@contextlib.contextmanager
def served(app: Any, *, timeout: float = 20.0) -> Iterator[str]:
    """Run `app` under a real uvicorn on 127.0.0.1 in a thread; yields "host:port"."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 20)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
