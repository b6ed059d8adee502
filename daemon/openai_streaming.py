"""A chat completion generated: the engine's deltas, and their SSE chunks when streamed.

A completion takes one of the reply slots the Realtime sessions use, so a crowd of API
clients waits or is refused with `server_busy`, and waiting never counts as an engine
stall. A character's adapter is pinned only while its reply generates. A streamed
reply stops generating as soon as the client goes away; an error after the headers
travels in the stream, as vLLM sends it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from personae.daemon.characters import Character
from personae.daemon.engines.base import GenerationRequest
from personae.daemon.errors import PersonaeError
from personae.daemon.openai_finishing import api_finished
from personae.daemon.openai_usage import usage_and_finish

if TYPE_CHECKING:
    from personae.daemon.service import Service
    from personae.daemon.session.finishing import Finisher

log = logging.getLogger("personae.openai")


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


async def deltas(svc: Service, reply: Reply) -> AsyncIterator[str]:
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
            async with contextlib.aclosing(stream) as pieces:
                async for delta in pieces:
                    yield delta
        finally:
            release()


def _nothing() -> None:
    pass


async def sse(
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
        async with contextlib.aclosing(deltas(svc, reply)) as pieces:
            async for delta in pieces:
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
