"""The session's two edges on the connection: frames in, events out.

In: a frame over `max_frame_bytes` closes the connection (1009); one that does not
decode becomes an `error` event; the key's rate guard admits each event, and a client
that goes on past its limits is closed (1008).
Out: each event spelled as the client's dialect spells it (or not sent, when that
dialect has no such event); a client that accepts no frame within `send_timeout_s` is
not reading, and is closed (SlowClientError, 1008).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from personae.daemon.errors import LimitExceededError
from personae.daemon.limits import SessionGuard
from personae.daemon.session import openai_session
from personae.daemon.session.outbox import SlowClientError
from personae.daemon.session.reporting import ErrorReporter
from personae.sdk import protocol as p
from personae.sdk.framing import FrameError, decode_client
from personae.sdk.openai_shape import Dialect


class SessionClosed(Exception):
    """The transport is gone (or must go: `code` is the WebSocket close code)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def admitted(
    frame: str | bytes, *, limit: int, guard: SessionGuard | None, errors: ErrorReporter
) -> p.ClientEvent | None:
    """The frame's event, or None when it was refused with an `error` event."""
    if len(frame) > limit:
        raise SessionClosed(1009, f"frame of {len(frame)} bytes exceeds {limit}")
    try:
        event, _ = decode_client(frame)
    except FrameError as exc:
        errors.report(exc)
        return None
    if guard is not None:
        try:
            guard.admit(event)
        except LimitExceededError as exc:
            if guard.exhausted:
                raise SessionClosed(1008, "rate limit ignored") from None
            errors.report(exc, event_type=event.type, event_id=event.event_id)
            return None
    return event


async def send_spelled(
    send: Callable[[p.ServerEvent], Awaitable[None]],
    event: p.ServerEvent,
    *,
    dialect: Dialect,
    npc_events: bool,
    timeout_s: float,
) -> None:
    """`event` sent in the client's spelling, within `timeout_s`."""
    spelled = openai_session.spell(event, dialect, npc_events=npc_events)
    if spelled is None:
        return
    try:
        async with asyncio.timeout(timeout_s):
            await send(spelled)  # type: ignore[arg-type]
    except TimeoutError:
        raise SlowClientError(f"client accepted no frame for {timeout_s:g} s") from None
