"""The OpenAI API's requests and errors, as OpenAI clients send and expect them.

Requests accept (and ignore) the many options OpenAI clients send; what personae uses
is validated, and a bad body is answered in OpenAI's error shape:
{"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.errors import ClientError, PersonaeError

#: defaults of raw (adapter or base) requests: those of vLLM, with a bounded length
RAW_PARAMS = GenerationParams(temperature=1.0, top_p=1.0, max_tokens=512, repetition_penalty=1.0)


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.param = status, code, param
        self.headers = headers

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        if self.status == 404:
            kind = "not_found_error"
        return JSONResponse(
            {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}},
            status_code=self.status,
            headers=self.headers,
        )


def status_for(exc: PersonaeError) -> int:
    """The HTTP status of one of our errors: the client's fault, or retry, or ours."""
    if isinstance(exc, ClientError):
        return 400
    return 503 if exc.retryable else 500


def openai_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors of these routes in OpenAI's shape (the app's own handler has another)."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except OpenAIError as exc:
            return exc.response()
        except PersonaeError as exc:
            return OpenAIError(status_for(exc), str(exc), code=exc.code).response()

    return wrapper


# --------------------------------------------------------------------------- requests


class _Open(BaseModel):
    # OpenAI clients send many options (logprobs, presence_penalty, ...): ignored
    model_config = ConfigDict(extra="allow")


class MessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    #: on assistant messages: the id of the character who said it (group chats)
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                str(part.get("text", "")) for part in self.content if part.get("type") == "text"
            )
        return self.content or ""


class StreamOptions(_Open):
    include_usage: bool = False


class ChatCompletionRequest(_Open):
    model: str
    messages: list[MessageIn] = Field(min_length=1, max_length=512)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=1024)
    max_completion_tokens: int | None = Field(None, ge=1, le=1024)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    #: the player (state, memory) in character mode
    user: str | None = Field(None, min_length=1, max_length=64)
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0)  # vLLM's extra


class LoadLoraRequest(_Open):
    lora_name: str
    lora_path: str
    load_inplace: bool = False


class UnloadLoraRequest(_Open):
    lora_name: str


async def parse_body(request: Request, model: type[BaseModel]) -> Any:
    try:
        body = await request.json()
    except ValueError:
        raise OpenAIError(400, "the body is not valid JSON", code="invalid_json") from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise OpenAIError(
            400,
            f"{param}: {first['msg']}" if param else first["msg"],
            code="invalid_value",
            param=param,
        ) from None


# --------------------------------------------------------------------------- to the engine


def params_for(base: GenerationParams, body: ChatCompletionRequest) -> GenerationParams:
    update: dict[str, Any] = {}
    if body.temperature is not None:
        update["temperature"] = body.temperature
    if body.top_p is not None:
        update["top_p"] = body.top_p
    if (limit := body.max_completion_tokens or body.max_tokens) is not None:
        update["max_tokens"] = limit
    if body.stop is not None:
        update["stop"] = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    if body.repetition_penalty is not None:
        update["repetition_penalty"] = body.repetition_penalty
    return base.model_copy(update=update)


def raw_request(body: ChatCompletionRequest, adapter: str | None) -> GenerationRequest:
    messages = [
        ChatMessage("system" if m.role == "developer" else m.role, m.text())
        for m in body.messages
        if m.role != "tool"
    ]
    return GenerationRequest(
        messages=messages, params=params_for(RAW_PARAMS, body), adapter=adapter, seed=body.seed
    )
