"""Every limit answers with a precise `error` event, or closes with a standard code."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from personae.daemon.app import create_app
from personae.daemon.auth import LOCAL, KeyStore, Principal
from personae.daemon.errors import LimitExceededError
from personae.daemon.limits import Limits, TokenBucket
from personae.daemon.testing import FakeLLM, tone
from personae.daemon.testing.harness import fake_service, running, served
from personae.daemon.testing.wire import receive
from personae.sdk import protocol as p


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def text(s: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=s)]))


# ---------------------------------------------------------------------- token bucket


def test_token_bucket_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() and not bucket.take()
    clock.now += 100  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3


def test_token_bucket_checks_itself() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 3)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


# ---------------------------------------------------------------------- session slots


def test_sessions_per_key_and_in_total() -> None:
    limits = Limits(max_sessions=3, per_key=2, rate_per_s=1, burst=1)
    a, b = Principal("a", "a"), Principal("b", "b")
    with limits.session(a), limits.session(a):
        with pytest.raises(LimitExceededError) as info, limits.session(a):
            pass
        assert info.value.code == "too_many_sessions" and "key a" in str(info.value)
        with limits.session(b):
            assert limits.open_sessions == 3
            with pytest.raises(LimitExceededError, match="at most 3"), limits.session(b):
                pass
    assert limits.open_sessions == 0
    with limits.session(a):  # slots come back
        assert limits.sessions_of("a") == 1


def test_local_mode_has_a_bucket_per_session() -> None:
    limits = Limits(max_sessions=10, per_key=1, rate_per_s=1, burst=1)
    with limits.session(LOCAL) as g1, limits.session(LOCAL) as g2:
        g1.admit(p.ResponseCreate())
        g2.admit(p.ResponseCreate())  # not shared: no key to share


def test_a_keys_bucket_is_shared_and_survives_reconnects() -> None:
    clock = Clock()
    limits = Limits(max_sessions=10, per_key=5, rate_per_s=1, burst=2, clock=clock)
    key = Principal("k", "k")
    with limits.session(key) as g1, limits.session(key) as g2:
        g1.admit(p.ResponseCreate())
        g2.admit(p.ResponseCreate())
        with pytest.raises(LimitExceededError):
            g1.admit(p.ResponseCreate())
    with limits.session(key) as g3, pytest.raises(LimitExceededError) as info:
        g3.admit(p.ResponseCreate())
    assert info.value.code == "rate_limited"


# ---------------------------------------------------------------------- in a session


async def test_rate_limited_events_get_precise_errors_and_audio_is_not_counted(
    tmp_path: Path,
) -> None:
    clock = Clock()
    svc = fake_service(state_dir=tmp_path)
    limits = Limits(max_sessions=4, per_key=4, rate_per_s=1, burst=2, strikes=5, clock=clock)
    with limits.session(Principal("k", "k")) as guard:
        async with running(svc, guard=guard) as h:
            for _ in range(20):  # audio appends are unmetered
                h.send(p.InputAudioBufferAppend(audio=bytes(320)))
            h.send(p.InputAudioBufferClear(event_id="c1"))
            h.send(p.InputAudioBufferClear(event_id="c2"))
            h.send(p.InputAudioBufferClear(event_id="c3"))
            err = await h.wait_type("error")
            assert err.error.code == "rate_limited" and err.error.event_id == "c3"
            assert "retry in" in err.error.message
            assert len(h.of_type("input_audio_buffer.cleared")) == 2
            clock.now += 1.0
            h.send(p.InputAudioBufferClear(event_id="c4"))
            await h.wait_for(lambda e: len(h.of_type("input_audio_buffer.cleared")) == 3)
            # a client that keeps sending into a full limit is closed
            for i in range(6):
                h.send(p.InputAudioBufferClear(event_id=f"x{i}"))
            await h.wait_done()
    assert h.closed is not None and h.closed.code == 1008
    svc.close()


async def test_text_too_long(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, max_text_chars=50)
    async with running(svc) as h:
        h.send(text("x" * 51))
        err = await h.wait_type("error")
        assert err.error.code == "text_too_long" and "51" in err.error.message
        h.send(text("x" * 50))
        await h.wait_type("conversation.item.created")
    svc.close()


async def test_audio_per_turn(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, max_turn_audio_s=0.5)
    async with running(svc) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=None)))
        await h.wait_type("session.updated")
        for _ in range(3):
            h.send(p.InputAudioBufferAppend(audio=tone(0.2)))
        err = await h.wait_type("error")
        assert err.error.code == "audio_too_long"
        assert err.error.event_type == "input_audio_buffer.append"
        h.send(p.InputAudioBufferCommit())
        await h.wait_type("input_audio_buffer.committed")  # what fitted is kept
    svc.close()


async def test_too_many_pending_turns(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, llm=FakeLLM(stall_s=0.5))
    async with running(svc) as h:
        h.send(text("Hello."))
        for i in range(20):
            h.send(p.ResponseCreate(event_id=f"r{i}"))
        err = await h.wait_type("error")
        assert err.error.code == "too_many_pending_turns"
        h.send(p.ResponseCancel())
    svc.close()


async def test_oversized_frame_closes_with_1009(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, max_frame_bytes=4096)
    async with running(svc) as h:
        h.send(p.InputAudioBufferAppend(audio=bytes(8000)))
        await h.wait_done()
    assert h.closed is not None and h.closed.code == 1009
    svc.close()


# ---------------------------------------------------------------------- over the wire


def test_session_slots_over_the_wire(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path, max_sessions_per_key=1, max_sessions=2)
    store = KeyStore(svc.settings.resolved_keys_file)
    k1, _ = store.create("one")
    k2, _ = store.create("two")
    url = None
    with served(create_app(svc.settings, service=svc)) as address:
        url = f"ws://{address}/v1/realtime"
        hdr = {"Authorization": f"Bearer {k1}"}
        with connect(url, additional_headers=hdr) as first:
            assert receive(first)["type"] == "session.created"
            with connect(url, additional_headers=hdr) as second:
                event = receive(second)
                assert event["error"]["code"] == "too_many_sessions"
                assert event["error"]["retryable"] is True
                with pytest.raises(ConnectionClosed) as info:
                    receive(second)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1013
            with connect(url, additional_headers={"Authorization": f"Bearer {k2}"}) as other:
                assert receive(other)["type"] == "session.created"
        # the first session's slot is free again
        with connect(url, additional_headers=hdr) as again:
            assert receive(again)["type"] == "session.created"
    svc.close()
