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
import math
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from personae.daemon import openai_adapters
from personae.daemon.admission import ServerBusyError
from personae.daemon.errors import PersonaeError
from personae.daemon.openai_character import character_reply
from personae.daemon.openai_context import (
    bind_player,
    loaded,
    principal,
    require_admin,
    require_character,
    served_model_name,
    service,
)
from personae.daemon.openai_requests import (
    ChatCompletionRequest,
    OpenAIError,
    openai_errors,
    parse_body,
    raw_request,
    status_for,
)
from personae.daemon.openai_streaming import Reply, deltas, sse
from personae.daemon.openai_usage import usage_and_finish

router = APIRouter(prefix="/v1", tags=["openai"])

# --------------------------------------------------------------------------- models


@router.get("/models")
@openai_errors
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
    svc = service(request)
    caller = principal(request)
    visible = caller.visible(svc.cast) if caller is not None else list(svc.cast)
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
    return data + [card(name, str(path), base) for name, path in loaded(request).items()]


router.include_router(openai_adapters.router)

# --------------------------------------------------------------------------- completions


@router.post("/chat/completions")
@openai_errors
async def chat_completions(request: Request) -> Response:
    principal(request)  # 401 first: whether a model exists is no one's business without a key
    body: ChatCompletionRequest = await parse_body(request, ChatCompletionRequest)
    svc = service(request)
    if body.n != 1:
        raise OpenAIError(400, "only n=1 is supported", code="invalid_value", param="n")
    if body.model in svc.cast:
        require_character(request, body.model)
        body = bind_player(request, body)
        reply = await character_reply(svc, body)
    elif body.model in loaded(request) or body.model == served_model_name(svc):
        require_admin(request)
        adapter = body.model if body.model in loaded(request) else None
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
            sse(svc, reply, completion_id, body.model, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        async with (
            asyncio.timeout(svc.settings.reply_timeout_s),
            contextlib.aclosing(deltas(svc, reply)) as pieces,
        ):
            text = "".join([d async for d in pieces])
    except TimeoutError:
        raise OpenAIError(
            504, f"the reply took longer than {svc.settings.reply_timeout_s:g} s", code="timeout"
        ) from None
    except ServerBusyError as exc:
        # as the Realtime sessions: refused up front with a hint, never a stall
        retry = {"Retry-After": str(max(1, math.ceil(exc.retry_after_ms / 1000)))}
        raise OpenAIError(503, str(exc), code=exc.code, headers=retry) from None
    except PersonaeError as exc:
        raise OpenAIError(status_for(exc), str(exc), code=exc.code) from None
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


__all__ = ["router", "served_model_name"]
