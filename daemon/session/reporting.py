"""Errors a session's client hears of become `error` events here, and nowhere else.

A refused request (a bad frame, a `ClientError`) is the client's fault: an
`invalid_request_error` naming the event that caused it. An engine fault is the
server's: a `server_error` whose `retryable` says whether to try again. Once a reply
has started, whatever stops it is the server's, whatever its kind.
"""

from __future__ import annotations

import logging

from personae.daemon.errors import ClientError, PersonaeError
from personae.daemon.monitoring import Metrics
from personae.daemon.session.outbox import Outbox
from personae.sdk import protocol as p
from personae.sdk.framing import FrameError

log = logging.getLogger("personae.session")


class ReplyTimeoutError(PersonaeError):
    """A reply that did not finish within `reply_timeout_s`."""

    code = "reply_timeout"
    retryable = True


class ErrorReporter:
    def __init__(self, *, outbox: Outbox, metrics: Metrics, session_id: str) -> None:
        self._outbox = outbox
        self._metrics = metrics
        self._session_id = session_id

    def report(
        self,
        exc: BaseException,
        *,
        event_type: str | None = None,
        event_id: str | None = None,
        replying: bool = False,
    ) -> None:
        """Tell the client about `exc`, caused by its event `event_type` (`event_id`), or
        by the reply in progress when `replying`."""
        retryable = False
        if isinstance(exc, FrameError):
            code, message, server = exc.code, exc.message, False
            event_type, event_id = exc.event_type, exc.event_id
        elif isinstance(exc, ClientError) and not replying:
            code, message, server = exc.code, str(exc), False
        elif isinstance(exc, PersonaeError):
            code, message, server, retryable = exc.code, str(exc), True, exc.retryable
        else:  # a bug, not an engine's known failure: its traceback goes to the log
            log.error("session %s: reply failed", self._session_id, exc_info=exc)
            code, message, server = "engine_error", f"{type(exc).__name__}: {exc}", True
        self._outbox.control(
            p.Error(
                error=p.ErrorInfo(
                    type="server_error" if server else "invalid_request_error",
                    code=code,
                    message=message,
                    event_type=event_type,
                    event_id=event_id,
                    retryable=retryable,
                    retry_after_ms=getattr(exc, "retry_after_ms", None),
                )
            )
        )
        self._metrics.error(code)
        if server:
            log.warning("session %s: %s (%s)", self._session_id, code, message)
