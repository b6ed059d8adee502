"""Connection limits below the ASGI app: where a socket that never sends is caught.

    serve_app(app, settings)     # uvicorn with these protocols and options

An idle or half-sent connection never reaches the app, so the limits live in uvicorn's
protocol classes, subclassed here:

* **per address**: a peer holding `max_connections_per_address` open connections has
  further ones closed as they are accepted, before uvicorn counts them (its
  `limit_concurrency` counts idle sockets too, so one address could otherwise starve
  everyone);
* **header timeout**: a connection whose request head is not complete
  `header_timeout_s` after it opened (or after its previous response) is closed; this
  covers silent sockets, slowloris and half-sent WebSocket upgrades;
* uvicorn's own options: `timeout_keep_alive`, `limit_concurrency`, the h11 parser's
  `h11_max_incomplete_event_size` (a bound on the request head), WebSocket pings.

The per-address count follows the transport across the WebSocket upgrade: the
WebSocket protocol that takes it over releases the slot when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections import Counter
from typing import Any

from personae.daemon.settings import Settings


class AddressSlots:
    """Open connections per peer address; one event loop, so no lock."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self.open: Counter[str] = Counter()
        self._held: dict[int, str] = {}

    def take(self, transport: asyncio.BaseTransport) -> bool:
        host = _host(transport)
        if self.per_address and self.open[host] >= self.per_address:
            return False
        self.open[host] += 1
        self._held[id(transport)] = host
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        """Idempotent: both the HTTP and the WebSocket protocol may call it."""
        host = self._held.pop(id(transport), None)
        if host is not None:
            self.open[host] -= 1
            if not self.open[host]:
                del self.open[host]


def _host(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


def guarded_http(base: type[Any], slots: AddressSlots, header_timeout_s: float) -> type[Any]:
    """`base` (an uvicorn HTTP protocol) with the per-address and header-time limits."""

    class GuardedHTTP(base):  # type: ignore[misc, valid-type]
        _refused = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if not slots.take(transport):
                self._refused = True
                transport.abort()  # no response: it would cost what the limit saves
                return
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            slots.release(self.transport)
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._arm()  # a new request head is on its way
            super().data_received(data)

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    header_timeout_s, self._header_deadline, self.cycle
                )

        def _header_deadline(self, armed: object) -> None:
            self._header_timer = None
            transport = self.transport
            if transport.is_closing() or transport.get_protocol() is not self:
                return  # closed, or upgraded to a WebSocket
            if self.cycle is armed:  # no request head completed in time
                transport.close()

    GuardedHTTP.__name__ = f"Guarded{base.__name__}"
    return GuardedHTTP


def guarded_ws(base: type[Any], slots: AddressSlots) -> type[Any]:
    """`base` (an uvicorn WebSocket protocol) releasing the address slot it inherited."""

    class GuardedWS(base):  # type: ignore[misc, valid-type]
        def connection_lost(self, exc: Exception | None) -> None:
            slots.release(self.transport)
            super().connection_lost(exc)

    GuardedWS.__name__ = f"Guarded{base.__name__}"
    return GuardedWS


def raise_open_file_limit() -> None:
    """The soft limit up to the hard one: each connection costs a descriptor."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def uvicorn_config(app: Any, settings: Settings, **tls: Any) -> Any:
    import uvicorn
    from uvicorn.config import WS_PROTOCOLS
    from uvicorn.importer import import_from_string
    from uvicorn.protocols.http.h11_impl import H11Protocol

    slots = AddressSlots(settings.max_connections_per_address)
    # h11, not httptools: it bounds the request head (h11_max_incomplete_event_size)
    http = guarded_http(H11Protocol, slots, settings.header_timeout_s)
    ws = guarded_ws(import_from_string(WS_PROTOCOLS["auto"]), slots)
    # A client that never reads keeps accepting frames until the kernel's buffers fill
    # (megabytes on loopback: minutes of paced audio), so the per-frame send timeout
    # alone comes late. Its WebSocket library stops answering pings as soon as it stops
    # reading, so pings at half the send timeout close it within about that timeout.
    ping_s = min(settings.ws_ping_s, settings.send_timeout_s / 2)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=http,
        ws=ws,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=ping_s,
        ws_ping_timeout=ping_s,
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_level="warning",
        **tls,
    )


def serve_app(app: Any, settings: Settings, **tls: Any) -> None:
    """Run `app` until interrupted, with the limits above (`tls`: uvicorn's ssl_* options)."""
    import uvicorn

    raise_open_file_limit()
    uvicorn.Server(uvicorn_config(app, settings, **tls)).run()
