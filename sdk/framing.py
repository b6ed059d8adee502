"""The two framings of protocol events, and the decoder that guards the edge.

JSON text frames carry audio as base64; msgpack binary frames carry raw bytes. A peer
answers in the framing it was spoken to in. Decoding never raises anything but
`FrameError`, whose `code` goes verbatim into the `error` event.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import msgpack
from pydantic import BaseModel, TypeAdapter, ValidationError

from personae.sdk import protocol
from personae.sdk.bounds import BoundsError, check, loads_json


class Framing(enum.StrEnum):
    JSON = "json"
    MSGPACK = "msgpack"


class FrameError(Exception):
    """A frame that cannot become an event. `code` is stable; `message` says what to fix."""

    def __init__(
        self, code: str, message: str, *, event_type: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.event_type = event_type
        self.event_id = event_id


def encode(event: BaseModel, framing: Framing, *, only_set: bool = False) -> str | bytes:
    """`only_set`: leave out the fields the sender never set (and so means the
    default), as a client does: a daemon older than this SDK then never sees a field
    it does not know yet. The event's `type` always goes."""
    if only_set:
        data = event.model_dump(
            mode="json" if framing is Framing.JSON else "python", exclude_unset=True
        )
        data = {"type": event.type, **data}  # type: ignore[attr-defined]
        if framing is Framing.JSON:
            return json.dumps(data, separators=(",", ":"))
        return msgpack.packb(data, use_bin_type=True)
    if framing is Framing.JSON:
        return event.model_dump_json()
    return msgpack.packb(event.model_dump(mode="python"), use_bin_type=True)


def _load(frame: str | bytes) -> tuple[dict[str, Any], Framing]:
    if isinstance(frame, str):
        try:
            data = loads_json(frame)
        except BoundsError as exc:
            raise FrameError(exc.code, exc.message) from None
        except ValueError as exc:
            raise FrameError("malformed_frame", f"text frame is not valid JSON: {exc}") from None
        framing = Framing.JSON
    else:
        try:
            data = msgpack.unpackb(frame, raw=False, strict_map_key=True)
        except (
            msgpack.ExtraData,
            msgpack.FormatError,
            msgpack.StackError,
            ValueError,
            TypeError,
            UnicodeDecodeError,
        ) as exc:
            raise FrameError(
                "malformed_frame", f"binary frame is not valid msgpack: {exc}"
            ) from None
        framing = Framing.MSGPACK
        try:
            check(data)
        except BoundsError as exc:
            raise FrameError(exc.code, exc.message) from None
    if not isinstance(data, dict):
        raise FrameError("malformed_frame", "a frame must hold one event object (a map)")
    return data, framing


def _decode(
    frame: str | bytes, adapter: TypeAdapter[Any], known: frozenset[str]
) -> tuple[Any, Framing]:
    data, framing = _load(frame)
    event_type = data.get("type")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    if not isinstance(event_type, str):
        raise FrameError("missing_type", "event has no string 'type' field", event_id=event_id)
    if event_type not in known:
        raise FrameError(
            "unknown_event",
            f"unknown event type {event_type!r}",
            event_type=event_type,
            event_id=event_id,
        )
    try:
        return adapter.validate_python(data), framing
    except ValidationError as exc:
        raise FrameError(
            "invalid_event", _describe(exc), event_type=event_type, event_id=event_id
        ) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(x) for x in err["loc"][1:]) or "(event)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode_client(frame: str | bytes) -> tuple[protocol.ClientEvent, Framing]:
    """What the daemon calls on every frame it receives."""
    return _decode(frame, protocol.client_event_adapter, protocol.CLIENT_EVENT_TYPES)


def decode_server(frame: str | bytes) -> tuple[protocol.ServerEvent, Framing]:
    """What a client calls on every frame it receives."""
    return _decode(frame, protocol.server_event_adapter, protocol.SERVER_EVENT_TYPES)
