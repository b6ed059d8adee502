"""What a route of the OpenAI API reads from the app: the service, the adapters loaded
through the API, the name the base model is served under, and who calls.

Without API keys configured every caller is local development, except that loading
adapters and raw model access stay with clients on this host. With keys, a character
needs a key that may use it, `user` a key that may act for that player, and the raw
routes an admin key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from personae.daemon.adapters import engine_name
from personae.daemon.auth import default_player, is_loopback
from personae.daemon.engines.llm_openai import BUNDLED_BASE
from personae.daemon.errors import ClientError
from personae.daemon.openai_requests import ChatCompletionRequest, OpenAIError

if TYPE_CHECKING:
    from personae.daemon.service import Service


def service(request: Request) -> Service:
    return request.app.state.service


def loaded(request: Request) -> dict[str, Path]:
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


def engine_adapter_names(svc: Service) -> set[str]:
    """Names a raw adapter may not take: characters' and their adapters' in the engine."""
    # a character id would shadow the adapter in `model`
    names = set(svc.cast) | set(svc.adapters.resident())
    names.update(engine_name(ch.adapter) for ch in svc.cast.values() if ch.adapter is not None)
    return names


def principal(request: Request) -> Any:
    """Who calls, when the app checks API keys (None: it does not)."""
    auth = getattr(request.app.state, "auth", None)
    if auth is None:
        return None
    try:
        return auth.principal(request.headers, (), request.url.query)
    except ClientError as exc:
        raise OpenAIError(401, str(exc), code=exc.code) from None


def require_admin(request: Request) -> None:
    """Loading adapters, and raw model access, are an operator's: an admin key, or
    (without keys configured) a client on this host."""
    caller = principal(request)
    if caller is not None and getattr(caller, "key_id", None) != "local":
        if not caller.admin:
            raise OpenAIError(403, "this needs an admin key", code="forbidden")
        return
    if not is_loopback(request.client.host if request.client else ""):
        raise OpenAIError(
            403,
            "only clients on this host may do this until API keys are configured",
            code="forbidden",
        )


def bind_player(request: Request, body: ChatCompletionRequest) -> ChatCompletionRequest:
    """`user` is the player whose state applies: one the key may act for."""
    caller = principal(request)
    if caller is None:
        return body
    player = body.user or default_player(caller, service(request).settings.default_player_id)
    if body.user and not caller.may_play(player):
        raise OpenAIError(
            403, f"this key may not act for player {player!r}", code="forbidden_player"
        )
    return body.model_copy(update={"user": player})


def require_character(request: Request, character_id: str) -> None:
    caller = principal(request)
    if caller is not None and not caller.may_use(character_id):
        raise OpenAIError(403, f"this key may not use character {character_id!r}", code="forbidden")
