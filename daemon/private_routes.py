"""Routes that describe the daemon (`/metrics`, `/docs`, `/redoc`, `/openapi.json`)
follow the key requirement.

    app.add_middleware(PrivateRoutes, auth=auth, trusted=settings.trusted_networks)

In local development mode they stay open, as everything is. Once keys are required
they need an admin key: the metrics name characters and count sessions, the schema
lists the admin routes. A Prometheus scraper without a key may read `/metrics` from a
network named in `trusted_networks` (by the peer address of the connection; a reverse
proxy in front makes every client look like the proxy, so name only scrapers' networks).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from personae.daemon.auth import Authenticator, AuthError

DESCRIBING = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
METRICS = "/metrics"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8`, `192.168.1.7` (one host); ValueError names a bad one."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r} ({exc})") from None
    return tuple(out)


def in_networks(host: str, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in networks)


class PrivateRoutes:
    """ASGI middleware: admin key (or a trusted scraper for /metrics) once keys are required."""

    def __init__(self, app: Any, *, auth: Authenticator, trusted: Sequence[str] = ()) -> None:
        self.app = app
        self.auth = auth
        self.trusted = parse_networks(trusted)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or (path not in DESCRIBING and path != METRICS):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope, path)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, code, message = refusal
        body = json.dumps({"error": {"code": code, "message": message, "retryable": False}})
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})

    def _refusal(self, scope: dict[str, Any], path: str) -> tuple[int, str, str] | None:
        if self.auth.local_mode:
            return None
        client = scope.get("client") or ("", 0)
        if path == METRICS and in_networks(str(client[0]), self.trusted):
            return None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal = self.auth.principal(headers, (), scope.get("query_string", b""))
        except AuthError as exc:
            return 401, exc.code, str(exc)
        if not principal.admin:
            return 403, "forbidden", f"{path} needs an admin key"
        return None
