"""REST bodies bounded before anything reads them: size first, then numbers and depth.

    app.add_middleware(RequestBodies, max_bytes=settings.max_body_bytes)

Runs before routing and so before the key check: an anonymous 191 MB POST is refused
with 413 from its Content-Length (or once it passes `max_bytes`, when chunked) without
being held, and a JSON body is decoded once with `personae.sdk.bounds` (400 with a
precise code for huge numbers or deep nesting) before a route parses it again. The
error body carries both the daemon's fields (code, message, retryable) and OpenAI's
(type, param), so either kind of client reads it.
"""

from __future__ import annotations

import json
from typing import Any

from personae.sdk.bounds import BoundsError, loads_json

Scope = dict[str, Any]


class _TooLarge(Exception):
    pass


def _error(status: int, code: str, message: str) -> tuple[dict[str, Any], bytes]:
    body = {
        "error": {
            "code": code,
            "message": message,
            "retryable": False,
            "type": "invalid_request_error",
            "param": None,
        }
    }
    data = json.dumps(body).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, data


class RequestBodies:
    """ASGI middleware: body size limit, then the bounded JSON check."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send, 413, "body_too_large", self._too_large())
            return
        try:
            body = await self._read(receive)
        except _TooLarge:
            await self._refuse(send, 413, "body_too_large", self._too_large())
            return
        if body and b"json" in headers.get(b"content-type", b"json"):
            try:
                loads_json(body)
            except BoundsError as exc:
                await self._refuse(send, 400, exc.code, exc.message)
                return
            except ValueError:
                pass  # not JSON at all: the route says so in its own words
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _read(self, receive: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client left; the route sees what came
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (max_body_bytes)"

    @staticmethod
    async def _refuse(send: Any, status: int, code: str, message: str) -> None:
        start, body = _error(status, code, message)
        await send(start)
        await send({"type": "http.response.body", "body": body})
