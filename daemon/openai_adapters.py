"""vLLM's routes for loading adapters at runtime, for raw model access by an operator.

    POST /v1/load_lora_adapter    {"lora_name", "lora_path", "load_inplace"}: a folder of
    POST /v1/unload_lora_adapter  the adapter store (relative, or absolute inside it)

An adapter loaded here is this replica's, under a name no character or character's
adapter has; `model` = that name then generates with it (openai_api.py).
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from personae.daemon.adapters import AdapterNotFoundError, AdapterPathError, store_folder
from personae.daemon.errors import ConfigError, PersonaeError
from personae.daemon.openai_context import (
    engine_adapter_names,
    loaded,
    require_admin,
    served_model_name,
    service,
)
from personae.daemon.openai_requests import (
    LoadLoraRequest,
    OpenAIError,
    UnloadLoraRequest,
    openai_errors,
    parse_body,
)

log = logging.getLogger("personae.openai")

#: the routes, included in openai_api's router (under /v1)
router = APIRouter()

#: what the transformers engine accepts as an adapter name
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]{0,127}$")


@router.post("/load_lora_adapter")
@openai_errors
async def load_lora_adapter(request: Request) -> Response:
    require_admin(request)
    body: LoadLoraRequest = await parse_body(request, LoadLoraRequest)
    svc = service(request)
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
    if name in engine_adapter_names(svc) or name == served_model_name(svc):
        raise OpenAIError(
            400,
            f"lora_name {name!r} is taken by a character or its adapter",
            code="invalid_value",
            param="lora_name",
        )
    adapters = loaded(request)
    if name in adapters and not body.load_inplace:
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
    adapters[name] = path
    log.info("loaded adapter %s from %s", name, path)
    return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")


@router.post("/unload_lora_adapter")
@openai_errors
async def unload_lora_adapter(request: Request) -> Response:
    require_admin(request)
    body: UnloadLoraRequest = await parse_body(request, UnloadLoraRequest)
    svc = service(request)
    adapters = loaded(request)
    name = body.lora_name
    if name not in adapters:
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
    del adapters[name]
    return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")
