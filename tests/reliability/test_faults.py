"""Fault isolation: a failing or stalled engine ends one reply, not the session or others;
a client that stops reading is closed without slowing others; a client that leaves
mid-reply stops its work at once."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

from personae.daemon.app import create_app
from personae.daemon.engines.base import GenerationRequest
from personae.daemon.testing import FakeLLM, FakeTTS
from personae.daemon.testing.harness import assert_no_leaked_tasks, fake_service, running, served
from personae.daemon.testing.wire import receive, say, send
from personae.sdk import protocol as p
from personae.sdk.framing import Framing


@dataclass
class ScriptedLLM(FakeLLM):
    """Behaves by what the player said: "FAIL" raises mid-reply, "STALL" goes silent."""

    words_out: int = 0
    stopped: list[str] = field(default_factory=list)

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[str]:
        self.requests.append(request)
        line = request.messages[-1].content.splitlines()[-1]
        words = re.findall(r"\S+\s*", "One two three. Four five six. Seven eight nine ten.")
        for i, word in enumerate(words):
            if cancel.is_set():
                self.stopped.append(line)
                return
            if "FAIL" in line and i == 2:
                raise RuntimeError("scripted engine failure")
            if "STALL" in line and i == 2:
                cancel.wait(30)  # silent until the session gives up on it
            if cancel.wait(self.token_delay_s):
                self.stopped.append(line)
                return
            self.words_out += 1
            yield word


def user(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


async def turn(h, text: str, n: int) -> p.ResponseDone:
    h.send(user(text))
    h.send(p.ResponseCreate(response=p.ResponseOptions(character="bram")))
    return await h.wait_for(
        lambda e: e.type == "response.done" and len(h.of_type("response.done")) == n
    )


async def test_failing_and_stalled_engines_end_only_their_reply(tmp_path: Path) -> None:
    llm = ScriptedLLM(token_delay_s=0.01)
    svc = fake_service(
        state_dir=tmp_path, llm=llm, engine_stall_s=2.0
    )  # a healthy reply on a busy CPU stays well inside it
    lines = ["FAIL please", "STALL please", "hello", "hello", "hello"]
    async with contextlib_stack(svc, len(lines)) as hs:
        dones = await asyncio.gather(*(turn(h, line, 1) for h, line in zip(hs, lines, strict=True)))
        statuses = [d.response.status for d in dones]
        assert statuses == ["failed", "failed", "completed", "completed", "completed"]
        assert dones[0].response.status_reason == "error"
        assert dones[1].response.status_reason == "error"
        e_fail = hs[0].of_type("error")[0].error
        e_stall = hs[1].of_type("error")[0].error
        assert e_fail.code == "engine_error" and e_fail.type == "server_error"
        assert e_stall.code == "engine_error" and "no output for 2" in e_stall.message
        assert e_stall.retryable
        for h in hs[2:]:
            assert h.of_type("error") == []
        # the sessions that saw the faults go on talking
        again = await asyncio.gather(turn(hs[0], "hello", 2), turn(hs[1], "hello", 2))
        assert [d.response.status for d in again] == ["completed", "completed"]
    assert any("STALL" in s for s in llm.stopped)  # the stalled generation was stopped
    svc.close()


async def test_healthy_sessions_do_not_wait_for_a_stalled_one(tmp_path: Path) -> None:
    llm = ScriptedLLM(token_delay_s=0.0)
    svc = fake_service(state_dir=tmp_path, llm=llm, engine_stall_s=2.0)
    async with contextlib_stack(svc, 4) as hs:
        stalled = asyncio.create_task(turn(hs[0], "STALL now", 1))
        # text goes out a whole sentence at a time (session/finishing.py): wait for the
        # engine's words, not for a delta, before the stall
        async with asyncio.timeout(10):
            while llm.words_out < 2:  # noqa: ASYNC110 - a count kept by the engine thread
                await asyncio.sleep(0.01)
        dones = await asyncio.gather(*(turn(h, "hello", 1) for h in hs[1:]))
        assert all(d.response.status == "completed" for d in dones)
        # they ended while the stalled reply was still waiting for its stall timeout
        assert not stalled.done(), "healthy replies waited for the stalled one"
        assert (await stalled).response.status == "failed"
    svc.close()


class BrokenTTS(FakeTTS):
    def synthesize(self, text, voice):
        if "Four" in text:
            raise RuntimeError("scripted TTS failure")
        yield from super().synthesize(text, voice)


async def test_a_tts_failure_ends_the_reply_with_an_error(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, llm=ScriptedLLM(), tts=BrokenTTS())
    async with running(svc) as h:
        done = await turn(h, "hello", 1)
        assert done.response.status == "failed"
        assert h.of_type("error")[0].error.code == "engine_error"
        assert "tts" in h.of_type("error")[0].error.message
    svc.close()


# ---------------------------------------------------------------------- backpressure


async def test_a_client_that_stops_reading_is_closed_and_others_go_on(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, llm=ScriptedLLM(), send_timeout_s=0.3)
    async with running(svc) as healthy:
        async with running(svc, check_leaks=False) as stuck:
            gate = asyncio.Event()  # never set: this client stopped reading
            original = stuck._send

            async def blocked(event: p.ServerEvent) -> None:
                if event.type == "response.output_text.delta":
                    await gate.wait()
                await original(event)

            stuck.session._send = blocked
            stuck.send(user("hello"))
            stuck.send(p.ResponseCreate())
            done = await turn(healthy, "hello", 1)
            assert done.response.status == "completed"
            await stuck.wait_done()  # closed for its stalled sends
        assert stuck.closed is not None and stuck.closed.code == 1008
        assert "no frame for 0.3 s" in stuck.closed.reason
        done = await turn(healthy, "hello again", 2)
        assert done.response.status == "completed"
    svc.close()


def test_a_client_that_stops_reading_over_tcp_is_closed(tmp_path: Path) -> None:
    long = " ".join(["Words upon words, sentence after sentence."] * 40)
    svc = fake_service(
        state_dir=tmp_path,
        llm=FakeLLM(reply=lambda req: long),
        send_timeout_s=0.5,
        audio_lead_ms=0,
    )
    app = create_app(svc.settings, service=svc)
    with served(app) as address:
        host, port = address.split(":")
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((host, int(port)))
        with connect(
            f"ws://{address}/v1/realtime", sock=raw, max_size=None, close_timeout=0.5
        ) as ws:
            assert receive(ws)["type"] == "session.created"
            for _ in range(5):
                send(ws, say("Tell me everything."))
                send(ws, {"type": "response.create", "response": {"character": "bram"}})
            # stop reading: the server's buffers fill, its sends stall, it closes
            deadline = time.monotonic() + 20
            while app.state.limits.open_sessions and time.monotonic() < deadline:
                time.sleep(0.1)
            assert app.state.limits.open_sessions == 0, "the slow client was never closed"
            # meanwhile another client is served normally
            with connect(f"ws://{address}/v1/realtime") as other:
                assert receive(other)["type"] == "session.created"
    svc.close()


# ---------------------------------------------------------------------- disconnects


async def test_disconnect_mid_reply_cancels_the_work_at_once(tmp_path: Path) -> None:
    llm = ScriptedLLM(token_delay_s=0.05)
    svc = fake_service(state_dir=tmp_path, llm=llm)
    async with running(svc, Framing.JSON) as h:
        h.send(user("hello"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_text.delta")
        h.leave()  # the client goes away mid-reply
        await h.wait_done()
        # running fails the test on any task left behind
    await asyncio.sleep(0.2)
    words = llm.words_out
    await asyncio.sleep(0.3)
    assert llm.words_out == words < 10, "generation went on after the client left"
    assert llm.stopped == ["hello"]
    svc.close()


def test_disconnect_over_tcp_frees_the_slot_and_stops_generation(tmp_path: Path) -> None:
    llm = ScriptedLLM(token_delay_s=0.05)
    svc = fake_service(state_dir=tmp_path, llm=llm)
    app = create_app(svc.settings, service=svc)
    with served(app) as address:
        with connect(f"ws://{address}/v1/realtime") as ws:
            receive(ws)
            send(ws, say("hello"))
            send(ws, {"type": "response.create", "response": {"character": "bram"}})
            while receive(ws)["type"] != "response.output_text.delta":
                pass
        deadline = time.monotonic() + 2
        while (app.state.limits.open_sessions or not llm.stopped) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.state.limits.open_sessions == 0
        assert llm.stopped == ["hello"] and llm.words_out < 10
    svc.close()


# ---------------------------------------------------------------------- helpers


class contextlib_stack:
    """`n` guarded sessions on one service, entered and left together."""

    def __init__(self, svc, n: int) -> None:
        self._ctxs = [running(svc, check_leaks=False) for _ in range(n)]

    async def __aenter__(self):
        return [await c.__aenter__() for c in self._ctxs]

    async def __aexit__(self, *exc):
        for c in reversed(self._ctxs):
            await c.__aexit__(*exc)
        assert_no_leaked_tasks()
