"""Errors become `error` events in one place: whose fault, which code, whether to retry."""

from __future__ import annotations

import pytest

from personae.daemon.errors import ClientError, EngineError, LimitExceededError
from personae.daemon.moderation import ContentBlockedError
from personae.daemon.monitoring import Metrics
from personae.daemon.session.reporting import ErrorReporter, ReplyTimeoutError
from personae.sdk import protocol as p
from personae.sdk.framing import FrameError


class Collect:
    def __init__(self) -> None:
        self.events: list[p.ServerEvent] = []

    def control(self, event: p.ServerEvent) -> None:
        self.events.append(event)


def reported(exc: BaseException, **where: object) -> p.ErrorInfo:
    outbox, metrics = Collect(), Metrics()
    ErrorReporter(outbox=outbox, metrics=metrics, session_id="sess_1").report(exc, **where)  # type: ignore[arg-type]
    (event,) = outbox.events
    assert isinstance(event, p.Error)
    body, _ = metrics.render()
    assert f'code="{event.error.code}"'.encode() in body  # counted under its code
    return event.error


def test_a_bad_frame_is_the_clients_and_names_the_event_it_came_in() -> None:
    error = reported(FrameError("invalid_event", "no such field", event_type="x", event_id="e1"))
    assert (error.type, error.code, error.message) == (
        "invalid_request_error",
        "invalid_event",
        "no such field",
    )
    assert (error.event_type, error.event_id, error.retryable) == ("x", "e1", False)


def test_a_refused_request_is_the_clients() -> None:
    error = reported(
        LimitExceededError("slow down", code="rate_limited"), event_type="y", event_id="e2"
    )
    assert (error.type, error.code, error.event_type, error.event_id) == (
        "invalid_request_error",
        "rate_limited",
        "y",
        "e2",
    )


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (EngineError("no output for 5 s", engine="llm", retryable=True), "engine_error", True),
        (ContentBlockedError("reply stopped by moderation (blocklist)"), "content_blocked", True),
        (ReplyTimeoutError("the reply took longer than 30 s"), "reply_timeout", True),
        (ClientError("bad variant", code="invalid_variant"), "invalid_variant", False),
        (KeyError("bug"), "engine_error", False),
    ],
)
def test_whatever_stops_a_started_reply_is_the_servers(exc, code, retryable) -> None:
    error = reported(exc, replying=True)
    assert (error.type, error.code, error.retryable) == ("server_error", code, retryable)


def test_an_engine_fault_outside_a_reply_is_the_servers() -> None:
    error = reported(EngineError("device lost", engine="stt"))
    assert (error.type, error.code, error.message, error.retryable) == (
        "server_error",
        "engine_error",
        "stt: device lost",
        False,
    )
