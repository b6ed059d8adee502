"""The FastAPI app: `/v1/realtime` WebSocket, `/healthz`, `/v1/characters`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.websockets import WebSocketState

from personae.daemon import admin
from personae.daemon.auth import (
    Authenticator,
    AuthError,
    ForbiddenError,
    KeyStore,
    Principal,
    is_loopback,
    startup_banner,
)
from personae.daemon.errors import ClientError, ConfigError, LimitExceededError, PersonaeError
from personae.daemon.limits import Limits, SessionGuard
from personae.daemon.openai_api import router as openai_router
from personae.daemon.private_routes import PrivateRoutes
from personae.daemon.request_bodies import RequestBodies
from personae.daemon.service import Service
from personae.daemon.session.openai_session import openai_connection
from personae.daemon.session.session import RealtimeSession, SessionClosed
from personae.daemon.settings import Settings
from personae.sdk import protocol as p
from personae.sdk.framing import Framing, encode

log = logging.getLogger("personae.daemon")

#: HTTP status of client errors whose code is not a plain 400
_STATUS = {
    "unknown_character": 404,
    "unknown_version": 404,
    "not_deployed": 404,
    "version_exists": 409,
    "conflict": 409,
    "already_serving": 409,
    "no_previous_version": 409,
    "validation_failed": 422,
    "adapter_corrupt": 422,
}


async def poll_deployments(service: Service) -> None:
    """Pick up deployments and rollbacks made by any process, without a restart."""
    while True:
        await asyncio.sleep(service.settings.registry_poll_s)
        try:
            await service.run("store", service.deployments.poll)
        except PersonaeError as exc:
            # a bad new version must not stop the daemon: the previous one keeps serving
            log.error("deployment not applied: %s", exc)


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> FastAPI:
    """Build the app. Pass `service` to reuse loaded engines (tests, embedding)."""
    settings = settings or Settings()
    owned = service is None
    auth = Authenticator(KeyStore(settings.resolved_keys_file), required=settings.require_keys)
    if settings.require_keys and not auth.store.enabled:
        raise ConfigError(f"require_keys is set but {auth.store.path} holds no active API key")
    limits = Limits.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        (log.warning if auth.local_mode else log.info)(startup_banner(auth))
        if app.state.service is None:
            app.state.service = await asyncio.to_thread(Service.create, settings)
        poller = asyncio.create_task(poll_deployments(app.state.service), name="deployments")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if owned and app.state.service is not None:
                app.state.service.close()

    app = FastAPI(title="personae", version=str(p.PROTOCOL_VERSION), lifespan=lifespan)
    app.add_middleware(PrivateRoutes, auth=auth, trusted=settings.trusted_networks)
    # added last, so it runs first: bodies are bounded before anything else looks
    app.add_middleware(RequestBodies, max_bytes=settings.max_body_bytes)
    app.state.service = service
    app.state.sessions = 0
    app.state.auth, app.state.limits = auth, limits

    def check_admin(request: Request) -> None:
        """Admin routes: an admin key; with no keys configured, loopback clients only."""
        if auth.local_mode:
            if not is_loopback(request.client.host if request.client else ""):
                raise HTTPException(403, "admin routes are local-only until API keys exist")
            return
        try:
            http_principal(request).require_admin()
        except ForbiddenError as exc:
            raise HTTPException(403, str(exc)) from None

    def http_principal(request: Request) -> Principal:
        try:
            return auth.principal(request.headers, (), request.url.query)
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None

    app.state.require_admin = check_admin
    app.include_router(admin.router)
    app.include_router(openai_router)  # /v1/chat/completions, /v1/models, LoRA loading

    @app.exception_handler(PersonaeError)
    async def personae_error(request: Request, exc: PersonaeError) -> JSONResponse:
        # typed errors mapped once, here, for every REST route
        status = 500 if not isinstance(exc, ClientError) else _STATUS.get(exc.code, 400)
        return JSONResponse(
            {"error": {"code": exc.code, "message": str(exc), "retryable": exc.retryable}},
            status_code=status,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        svc: Service | None = app.state.service
        return {
            "status": "ok" if svc is not None else "starting",
            "protocol_version": p.PROTOCOL_VERSION,
            "sessions": app.state.sessions,
            "characters": len(svc.cast) if svc else 0,
        }

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text exposition of the service's metrics."""
        body, content_type = app.state.service.metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/characters")
    async def characters(request: Request) -> dict[str, Any]:
        svc: Service = app.state.service
        principal = http_principal(request)
        return {
            "characters": [
                {
                    "id": c.id,
                    "name": c.name,
                    "aliases": list(c.aliases),
                    "description": c.description,
                    "greeting": c.greeting,
                    "voice": c.voice.model_dump(),
                    "adapter": c.adapter.model_dump() if c.adapter else None,
                    # what the character does for the game (docs/characters.md)
                    "actions": [
                        {"name": a.name, "description": a.description, "parameters": a.parameters}
                        for a in c.actions
                    ],
                    "triggers": [
                        {"name": t.name, "parameters": t.parameters, "priority": t.priority}
                        for t in c.triggers
                    ],
                }
                for c in svc.cast.values()
                if principal.may_use(c.id)
            ]
        }

    static = Path(__file__).parent / "static"
    if (static / "index.html").is_file():
        # the browser playground: plain JavaScript in daemon/static, no build step
        app.mount("/playground", StaticFiles(directory=static, html=True), name="playground")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(static / "index.html")

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket) -> None:
        offered = ws.scope.get("subprotocols") or []
        # the key may travel as a subprotocol; only personae.v1 is ever echoed back
        await ws.accept(subprotocol=p.SUBPROTOCOL if p.SUBPROTOCOL in offered else None)
        try:
            principal = auth.principal(ws.headers, offered, ws.scope.get("query_string", b""))
        except AuthError as exc:
            await refuse(ws, exc, 1008)
            return
        slot = limits.session(principal)
        try:
            guard = slot.__enter__()
        except LimitExceededError as exc:
            await refuse(ws, exc, 1013)  # try again later
            return
        try:
            await serve_socket(ws, app.state.service, guard)
        finally:
            slot.__exit__(None, None, None)

    async def refuse(ws: WebSocket, exc: AuthError | LimitExceededError, close: int) -> None:
        error = p.Error(error=p.ErrorInfo(code=exc.code, message=str(exc), retryable=close == 1013))
        with contextlib.suppress(RuntimeError, ConnectionError, WebSocketDisconnect):
            await ws.send_text(encode(error, Framing.JSON))  # type: ignore[arg-type]
            await ws.close(code=close, reason=exc.code)

    async def serve_socket(ws: WebSocket, svc: Service, guard: SessionGuard) -> None:
        framing = Framing.JSON  # until the client's first frame says otherwise

        async def receive() -> str | bytes:
            nonlocal framing
            try:
                async with asyncio.timeout(svc.settings.idle_timeout_s):
                    message = await ws.receive()
            except TimeoutError:
                raise SessionClosed(1000, "idle") from None
            except (WebSocketDisconnect, RuntimeError) as exc:
                raise SessionClosed(1006, "client went away") from exc
            if message["type"] == "websocket.disconnect":
                raise SessionClosed(message.get("code", 1000))
            if message.get("bytes") is not None:
                framing = Framing.MSGPACK
                return message["bytes"]
            framing = Framing.JSON
            return message.get("text") or ""

        async def send(event: p.ServerEvent) -> None:
            data = encode(event, framing)
            try:
                if isinstance(data, bytes):
                    await ws.send_bytes(data)
                else:
                    await ws.send_text(data)
            except (WebSocketDisconnect, RuntimeError, ConnectionError) as exc:
                raise SessionClosed(1006, "client went away") from exc

        try:
            session = RealtimeSession(
                svc, receive=receive, send=send, guard=guard, **openai_connection(ws)
            )
        except ClientError as exc:  # an unknown `model` in the URL: before the session starts
            await refuse(ws, exc, 1008)  # type: ignore[arg-type]
            return
        app.state.sessions += 1
        code, reason = 1000, ""
        try:
            await session.run()
        except SessionClosed as exc:
            code, reason = exc.code, exc.reason
        finally:
            app.state.sessions -= 1
        if code != 1006 and ws.client_state is WebSocketState.CONNECTED:
            # bounded: a client that stopped reading would hold the close handshake forever
            with contextlib.suppress(
                RuntimeError, ConnectionError, WebSocketDisconnect, TimeoutError
            ):
                async with asyncio.timeout(svc.settings.send_timeout_s):
                    await ws.close(code=code, reason=reason[:120])

    return app
