"""A test client's side of the wire, over a `websockets.sync` connection: msgpack out,
either framing in."""

from __future__ import annotations

import json
from typing import Any

import msgpack


def receive(ws: Any, timeout: float = 10) -> dict[str, Any]:
    frame = ws.recv(timeout=timeout)
    return msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)


def send(ws: Any, event: dict[str, Any]) -> None:
    ws.send(msgpack.packb(event))


def until(ws: Any, type_: str, timeout: float = 10) -> dict[str, Any]:
    """Events up to the first of `type_` (which is returned); an error event raises."""
    while True:
        event = receive(ws, timeout)
        if event["type"] == type_:
            return event
        if event["type"] == "error":
            raise AssertionError(event)


def say(text: str) -> dict[str, Any]:
    """The player's typed line."""
    return {
        "type": "conversation.item.create",
        "item": {"content": [{"type": "input_text", "text": text}]},
    }
