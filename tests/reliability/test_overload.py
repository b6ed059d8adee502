"""Overload: replies wait for a slot or are refused up front with `server_busy`; waiting
for the model never fails a reply as an engine stall."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from websockets.sync.client import connect

from personae.daemon.admission import Admission, ServerBusyError
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive, say, send

# ---------------------------------------------------------------------- admission


def test_slots_then_queue_then_refusal() -> None:
    async def scenario() -> list[str]:
        admission = Admission(slots=1, queue=1, wait_s=5)
        release = asyncio.Event()
        log: list[str] = []

        async def reply(name: str) -> None:
            try:
                async with admission.slot():
                    log.append(f"{name} runs")
                    await release.wait()
            except ServerBusyError as exc:
                assert exc.code == "server_busy" and exc.retryable
                assert exc.retry_after_ms >= 100
                log.append(f"{name} busy")

        first = asyncio.create_task(reply("a"))
        await asyncio.sleep(0)
        second = asyncio.create_task(reply("b"))
        await asyncio.sleep(0)
        await reply("c")  # slot taken, queue full: refused at once
        assert (admission.busy, admission.waiting) == (1, 1)
        release.set()
        await asyncio.gather(first, second)
        assert (admission.busy, admission.waiting) == (0, 0)
        return log

    assert asyncio.run(scenario()) == ["a runs", "c busy", "b runs"]


def test_a_wait_that_runs_out_is_server_busy_and_frees_its_place() -> None:
    async def scenario() -> None:
        admission = Admission(slots=1, queue=4, wait_s=0.05)
        async with admission.slot():
            with pytest.raises(ServerBusyError, match="within"):
                async with admission.slot():
                    pass
            assert admission.waiting == 0
        assert admission.busy == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def scenario() -> None:
        admission = Admission(slots=1, queue=4, wait_s=5)
        async with admission.slot():
            waiter = asyncio.create_task(admission.slot().__aenter__())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert admission.waiting == 0
        assert admission.busy == 0

    asyncio.run(scenario())


def test_admission_checks_itself() -> None:
    with pytest.raises(ValueError):
        Admission(slots=0, queue=1, wait_s=1)


# ---------------------------------------------------------------------- a real daemon


def test_a_crowd_waits_or_is_refused_never_stalls(tmp_path: Path) -> None:
    # one reply at a time inside the engine, 1.2 s each; the stall limit is 1 s
    slow = FakeEngines(voices=False, token_delay_s=0.2, tts_ms_per_char=1, llm_parallel=1)
    settings = {
        "engine_stall_s": 1.0,
        "reply_slots": 1,
        "reply_queue": 2,
        "reply_queue_wait_s": 20.0,
        "max_sessions_per_key": 64,
    }
    outcomes: list[str] = []
    lock = threading.Lock()

    def player(d: Daemon, i: int, go: threading.Barrier) -> None:
        with connect(d.ws) as ws:
            assert receive(ws)["type"] == "session.created"
            send(ws, {"type": "session.update", "session": {"output_modalities": ["text"]}})
            go.wait()
            send(ws, say(f"probe tok{i} Hello Bram."))
            send(ws, {"type": "response.create", "response": {"character": "bram"}})
            errors = []
            while (event := receive(ws, timeout=60))["type"] != "response.done":
                if event["type"] == "error":
                    errors.append(event["error"])
            status = event["response"]["status"]
            if status == "failed":  # the reason follows response.done
                errors.append(receive(ws)["error"])
            with lock:
                if status == "completed" and not errors:
                    outcomes.append("completed")
                else:
                    codes = [e["code"] for e in errors]
                    hints = [e.get("retry_after_ms") for e in errors]
                    outcomes.append(f"{status}:{codes}:{hints[0] is not None if hints else ''}")

    with Daemon(state_dir=tmp_path, fakes=slow, settings=settings) as d:
        go = threading.Barrier(6)
        threads = [threading.Thread(target=player, args=(d, i, go)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
    assert len(outcomes) == 6
    assert outcomes.count("completed") >= 3  # the slot and the queue are served
    refused = [o for o in outcomes if o != "completed"]
    assert refused and all(o == "failed:['server_busy']:True" for o in refused), outcomes


def test_waiting_for_a_tts_thread_is_not_a_stall() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from personae.daemon.errors import EngineError
    from personae.daemon.session.deadlines import in_time_once_started

    pool = ThreadPoolExecutor(1)

    async def run(stage: str, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def scenario() -> None:
        busy = threading.Event()
        blocker = asyncio.ensure_future(run("tts", busy.wait, 0.6))  # the only thread
        # queued 0.6 s behind it with a 0.2 s stall limit: still served
        assert await in_time_once_started(run, "tts", lambda x: x * 2, (21,), 0.2) == 42
        await blocker
        # a call that itself runs past the limit is a stall
        with pytest.raises(EngineError, match="no result"):
            await in_time_once_started(run, "tts", threading.Event().wait, (0.6,), 0.2)

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown(wait=True)


def test_api_clients_share_the_reply_slots(tmp_path: Path) -> None:
    """`/v1/chat/completions` takes the sessions' reply slots: a crowd of API clients
    is served or refused up front with 503 `server_busy` and Retry-After, never failed
    as an engine stall."""
    import httpx

    slow = FakeEngines(voices=False, token_delay_s=0.2, tts_ms_per_char=1, llm_parallel=1)
    settings = {
        "engine_stall_s": 1.0,
        "reply_slots": 1,
        "reply_queue": 2,
        "reply_queue_wait_s": 20.0,
    }
    outcomes: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def client(d: Daemon, i: int, go: threading.Barrier) -> None:
        body = {
            "model": "bram",
            "messages": [{"role": "user", "content": f"probe tok{i} Hello Bram."}],
            "max_tokens": 12,
        }
        go.wait()
        r = httpx.post(f"{d.url}/v1/chat/completions", json=body, timeout=60)
        code = "" if r.status_code == 200 else r.json()["error"]["code"]
        with lock:
            outcomes.append((r.status_code, code, r.headers.get("retry-after")))

    with Daemon(state_dir=tmp_path, fakes=slow, settings=settings) as d:
        go = threading.Barrier(6)
        threads = [threading.Thread(target=client, args=(d, i, go)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
    assert len(outcomes) == 6
    assert sum(status == 200 for status, _, _ in outcomes) >= 3, outcomes
    refused = [o for o in outcomes if o[0] != 200]
    assert refused, outcomes
    assert all(s == 503 and c == "server_busy" and int(h) >= 1 for s, c, h in refused), outcomes
