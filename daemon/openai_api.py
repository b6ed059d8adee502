"""The OpenAI API, as vLLM serves it: role-play front ends and OpenAI SDKs talk to characters.

    POST /v1/chat/completions   model = a character id: that character's prompt, memory,
                                state, adapter and generation parameters (the request's
                                temperature, top_p, max_tokens, stop, seed override them);
                                model = an adapter loaded below, or the base model's name:
                                the messages as given, like vLLM. `stream` gives SSE chunks.
    GET  /v1/models             the base model, the characters, the loaded adapters
    POST /v1/load_lora_adapter  {"lora_name", "lora_path", "load_inplace"}: a folder of the
    POST /v1/unload_lora_adapter  adapter store (relative, or absolute inside it)

In character mode the request's `user` is the player whose state and memory apply
(default: `default_player_id`); the last user message is heard by the character and the
reply is logged, as in a realtime session. System messages become the reply's
instructions: player text never reaches the system prompt as the character's own.

Errors have OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from personae.daemon.adapters import (
    AdapterNotFoundError,
    AdapterPathError,
    engine_name,
    store_folder,
)
from personae.daemon.admission import ServerBusyError
from personae.daemon.auth import default_player
from personae.daemon.characters import Character
from personae.daemon.engines.base import GenerationRequest
from personae.daemon.engines.llm_openai import BUNDLED_BASE
from personae.daemon.errors import ClientError, ConfigError, PersonaeError
from personae.daemon.openai_finishing import api_finished, finishing_reply
from personae.daemon.openai_requests import (
    ChatCompletionRequest,
    LoadLoraRequest,
    MessageIn,
    OpenAIError,
    UnloadLoraRequest,
    params_for,
    parse_body,
    raw_request,
)
from personae.daemon.openai_usage import usage_and_finish
from personae.daemon.session.prompt import Turn

if TYPE_CHECKING:
    from personae.daemon.service import Service
    from personae.daemon.session.finishing import Finisher

log = logging.getLogger("personae.openai")

router = APIRouter(prefix="/v1", tags=["openai"])

#: what the transformers engine accepts as an adapter name
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]{0,127}$")

# --------------------------------------------------------------------------- state


def _service(request: Request) -> Service:
    return request.app.state.service


def _loaded(request: Request) -> dict[str, Path]:
    """Adapters loaded through this API (this replica's, like a vLLM server's)."""
    state = request.app.state
    if getattr(state, "openai_adapters", None) is None:
        state.openai_adapters = {}
    return state.openai_adapters


def served_model_name(svc: Service) -> str:
    s = svc.settings
    if s.served_model_name:
        return s.served_model_name
    if s.llm_engine == "transformers":
        return Path(s.llm_model).name if s.llm_model else BUNDLED_BASE
    return getattr(svc.engines.llm, "base_model", None) or s.vllm_model or BUNDLED_BASE


def _engine_adapter_names(svc: Service) -> set[str]:
    """Names a raw adapter may not take: characters' and their adapters' in the engine."""
    # a character id would shadow the adapter in `model`
    names = set(svc.cast) | set(svc.adapters.resident())
    names.update(engine_name(ch.adapter) for ch in svc.cast.values() if ch.adapter is not None)
    return names


# --------------------------------------------------------------------------- routes


def _openai_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors of these routes in OpenAI's shape (the app's own handler has another)."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except OpenAIError as exc:
            return exc.response()
        except PersonaeError as exc:
            return OpenAIError(_status(exc), str(exc), code=exc.code).response()

    return wrapper


@router.get("/models")
@_openai_errors
async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": _model_cards(request)})


@router.get("/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str) -> Response:
    for card in _model_cards(request):
        if card["id"] == model_id:
            return JSONResponse(card)
    error = OpenAIError(404, f"The model `{model_id}` does not exist.", code="model_not_found")
    return error.response()


def _model_cards(request: Request) -> list[dict[str, Any]]:
    svc = _service(request)
    principal = _principal(request)
    visible = principal.visible(svc.cast) if principal is not None else list(svc.cast)
    base = served_model_name(svc)
    now = int(time.time())

    def card(id_: str, root: str, parent: str | None, **extra: Any) -> dict[str, Any]:
        return {
            "id": id_,
            "object": "model",
            "created": now,
            "owned_by": "personae",
            "root": root,
            "parent": parent,
            **extra,
        }

    data = [card(base, base, None)]
    data += [
        card(ch.id, base, base, name=ch.name, description=ch.description)
        for ch in (svc.cast[cid] for cid in visible)
    ]
    return data + [card(name, str(path), base) for name, path in _loaded(request).items()]


@router.post("/load_lora_adapter")
@_openai_errors
async def load_lora_adapter(request: Request) -> Response:
    _require_admin(request)
    body: LoadLoraRequest = await parse_body(request, LoadLoraRequest)
    svc = _service(request)
    name = body.lora_name
    if not svc.engines.llm.supports_adapters:
        raise OpenAIError(
            400, f"the {svc.engines.llm.name} engine does not load adapters", code="unsupported"
        )
    if not _ADAPTER_NAME.match(name):
        raise OpenAIError(
            400,
            f"invalid lora_name {name!r}: use letters, digits and '_@+-'",
            code="invalid_value",
            param="lora_name",
        )
    if name in _engine_adapter_names(svc) or name == served_model_name(svc):
        raise OpenAIError(
            400,
            f"lora_name {name!r} is taken by a character or its adapter",
            code="invalid_value",
            param="lora_name",
        )
    loaded = _loaded(request)
    if name in loaded and not body.load_inplace:
        raise OpenAIError(
            400,
            f"The lora adapter '{name}' has already been loaded.",
            code="already_loaded",
            param="lora_name",
        )
    try:
        path = store_folder(svc.settings.resolved_adapters_dir, body.lora_path)
    except AdapterPathError as exc:
        raise OpenAIError(400, str(exc), code="invalid_path", param="lora_path") from None
    except AdapterNotFoundError as exc:
        raise OpenAIError(404, str(exc), code="not_found", param="lora_path") from None
    try:
        await svc.run("llm", svc.engines.llm.load_adapter, name, str(path))
    except ConfigError as exc:
        raise OpenAIError(400, str(exc), code="invalid_adapter", param="lora_path") from None
    except PersonaeError as exc:
        raise OpenAIError(503 if exc.retryable else 500, str(exc), code=exc.code) from None
    loaded[name] = path
    log.info("loaded adapter %s from %s", name, path)
    return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")


@router.post("/unload_lora_adapter")
@_openai_errors
async def unload_lora_adapter(request: Request) -> Response:
    _require_admin(request)
    body: UnloadLoraRequest = await parse_body(request, UnloadLoraRequest)
    svc = _service(request)
    loaded = _loaded(request)
    name = body.lora_name
    if name not in loaded:
        raise OpenAIError(
            404,
            f"The lora adapter '{name}' cannot be found.",
            code="not_found",
            param="lora_name",
        )
    try:
        await svc.run("llm", svc.engines.llm.unload_adapter, name)
    except PersonaeError as exc:
        raise OpenAIError(503 if exc.retryable else 500, str(exc), code=exc.code) from None
    del loaded[name]
    return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")


def _principal(request: Request) -> Any:
    """Who calls, when the app checks API keys (None: it does not)."""
    auth = getattr(request.app.state, "auth", None)
    if auth is None:
        return None
    try:
        return auth.principal(request.headers, (), request.url.query)
    except ClientError as exc:
        raise OpenAIError(401, str(exc), code=exc.code) from None


def _require_admin(request: Request) -> None:
    """Loading adapters, and raw model access, are an operator's: an admin key, or
    (without keys configured) a client on this host."""
    principal = _principal(request)
    if principal is not None and getattr(principal, "key_id", None) != "local":
        if not principal.admin:
            raise OpenAIError(403, "this needs an admin key", code="forbidden")
        return
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host in ("testclient", "localhost")
    if not local:
        raise OpenAIError(
            403,
            "only clients on this host may do this until API keys are configured",
            code="forbidden",
        )


def _bind_player(request: Request, body: ChatCompletionRequest) -> ChatCompletionRequest:
    """`user` is the player whose state applies: one the key may act for."""
    principal = _principal(request)
    if principal is None:
        return body
    player = body.user or default_player(principal, _service(request).settings.default_player_id)
    if body.user and not principal.may_play(player):
        raise OpenAIError(
            403, f"this key may not act for player {player!r}", code="forbidden_player"
        )
    return body.model_copy(update={"user": player})


def _require_character(request: Request, character_id: str) -> None:
    principal = _principal(request)
    if principal is not None and not principal.may_use(character_id):
        raise OpenAIError(403, f"this key may not use character {character_id!r}", code="forbidden")


# --------------------------------------------------------------------------- completions


@dataclass(frozen=True, slots=True)
class Reply:
    """One completion: what to generate, and what to do with the finished text."""

    generation: GenerationRequest
    #: a character's reply: its adapter is pinned only while generating
    character: Character | None = None
    #: called with the reply text once it is complete (logs it for the character)
    said: Callable[[str], Awaitable[None]] | None = None
    #: a character's reply ends on a complete sentence (session/finishing.py)
    finisher: Finisher | None = None


@router.post("/chat/completions")
@_openai_errors
async def chat_completions(request: Request) -> Response:
    _principal(request)  # 401 first: whether a model exists is no one's business without a key
    body: ChatCompletionRequest = await parse_body(request, ChatCompletionRequest)
    svc = _service(request)
    if body.n != 1:
        raise OpenAIError(400, "only n=1 is supported", code="invalid_value", param="n")
    if body.model in svc.cast:
        _require_character(request, body.model)
        body = _bind_player(request, body)
        reply = await _character_reply(svc, body)
    elif body.model in _loaded(request) or body.model == served_model_name(svc):
        _require_admin(request)
        adapter = body.model if body.model in _loaded(request) else None
        reply = Reply(raw_request(body, adapter))
    else:
        raise OpenAIError(
            404,
            f"The model `{body.model}` does not exist.",
            code="model_not_found",
            param="model",
        )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(svc, reply, completion_id, body.model, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        async with (
            asyncio.timeout(svc.settings.reply_timeout_s),
            contextlib.aclosing(_deltas(svc, reply)) as deltas,
        ):
            text = "".join([d async for d in deltas])
    except TimeoutError:
        raise OpenAIError(
            504, f"the reply took longer than {svc.settings.reply_timeout_s:g} s", code="timeout"
        ) from None
    except ServerBusyError as exc:
        # as the Realtime sessions: refused up front with a hint, never a stall
        retry = {"Retry-After": str(max(1, math.ceil(exc.retry_after_ms / 1000)))}
        raise OpenAIError(503, str(exc), code=exc.code, headers=retry) from None
    except PersonaeError as exc:
        raise OpenAIError(_status(exc), str(exc), code=exc.code) from None
    if reply.said is not None:
        await reply.said(text)
    usage, finish = await usage_and_finish(svc, reply.generation, text, reply.finisher)
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            **({"usage": usage} if usage is not None else {}),
        }
    )


def _status(exc: PersonaeError) -> int:
    if isinstance(exc, ClientError):
        return 400
    return 503 if exc.retryable else 500


async def _deltas(svc: Service, reply: Reply) -> AsyncIterator[str]:
    # the same reply slots as the Realtime sessions: a crowd of API clients waits or is
    # refused with `server_busy`, and waiting never counts as an engine stall
    async with svc.admission.slot():
        generation = reply.generation
        release: Callable[[], None] = _nothing
        if reply.character is not None:
            adapter, release = await _acquire(svc, reply.character)
            generation = dataclasses.replace(generation, adapter=adapter)
        try:
            stream = svc.stream("llm", lambda cancel: svc.engines.llm.generate(generation, cancel))
            if reply.finisher is not None:
                stream = api_finished(svc, generation, stream, reply.finisher)
            async with contextlib.aclosing(stream) as deltas:
                async for delta in deltas:
                    yield delta
        finally:
            release()


def _nothing() -> None:
    pass


async def _sse(
    svc: Service, reply: Reply, completion_id: str, model: str, include_usage: bool
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        event = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            event["usage"] = None
        return f"data: {json.dumps(event)}\n\n"

    text: list[str] = []
    try:
        yield chunk({"role": "assistant", "content": ""})
        # closed at once when the client goes away: the engine stops generating
        async with contextlib.aclosing(_deltas(svc, reply)) as deltas:
            async for delta in deltas:
                text.append(delta)
                yield chunk({"content": delta})
    except PersonaeError as exc:
        # headers are gone: the error travels in the stream, as vLLM sends it
        error = {"message": str(exc), "type": "server_error", "param": None, "code": exc.code}
        yield f"data: {json.dumps({'error': error})}\n\n"
        yield "data: [DONE]\n\n"
        return
    usage, finish = await usage_and_finish(svc, reply.generation, "".join(text), reply.finisher)
    yield chunk({}, finish)
    if include_usage:
        final = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        final |= {"model": model, "choices": [], "usage": usage}
        yield f"data: {json.dumps(final)}\n\n"
    yield "data: [DONE]\n\n"
    if reply.said is not None:
        try:
            await reply.said("".join(text))
        except PersonaeError as exc:  # the client has its reply; the log lacks it
            log.error("reply not logged: %s", exc)


async def _character_reply(svc: Service, body: ChatCompletionRequest) -> Reply:
    player = body.user or svc.settings.default_player_id
    # one turn-log session per player of this API (it has no sessions of its own)
    session_id = "openai-" + hashlib.sha256(player.encode()).hexdigest()[:16]
    conversation = svc.conversation
    casting = await conversation.casting(body.model, player)
    character = casting.character
    history, instructions = _history(character, body.messages, svc)
    last = body.messages[-1]
    if last.role == "user" and (heard := last.text().strip()):
        await conversation.player_said([character.id], player, heard, session_id=session_id)
    turn = await conversation.prepare(
        character,
        history,
        player,
        instructions=instructions,
        params=params_for(character.generation, body),
        seed=body.seed,
    )

    async def said(text: str) -> None:
        if text.strip():
            await conversation.character_said(casting, player, text.strip(), session_id=session_id)

    return finishing_reply(svc, turn.request, character, said)


def _history(
    character: Character, messages: list[MessageIn], svc: Service
) -> tuple[list[Turn], str | None]:
    history: list[Turn] = []
    system: list[str] = []
    for m in messages:
        text = m.text().strip()
        if not text or m.role == "tool":
            continue
        if m.role in ("system", "developer"):
            system.append(text)
        elif m.role == "assistant":
            speaker = m.name if m.name in svc.cast else character.id
            history.append(Turn(speaker, text))
        else:
            history.append(Turn("player", text))
    limit = svc.settings.max_text_chars
    if any(len(t.text) > limit for t in history) or any(len(t) > limit for t in system):
        raise OpenAIError(
            400, f"a message exceeds {limit} characters", code="limit_exceeded", param="messages"
        )
    return history, "\n".join(system) or None


async def _acquire(svc: Service, character: Character) -> tuple[str | None, Callable[[], None]]:
    """The engine's name of the character's adapter, pinned until `release`."""
    # blocking (a load reads the adapter, or registers it on a vLLM server)
    name = await svc.run("adapters", svc.adapters.acquire, character)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            svc.adapters.release(name)

    return name, release
