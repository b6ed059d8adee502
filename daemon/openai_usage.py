"""Chat completions' `usage` and `finish_reason`, from the LLM engine's own counts.

`usage` counts the prompt (as the engine's chat template renders it) and the reply
with the engine's tokenizer; engines that cannot count (`LLMEngine.count_tokens`
returns None) send no `usage`. A reply whose tokens reach the request's `max_tokens`
was cut there: its `finish_reason` is "length". A character's reply says for itself
(its `finisher` trimmed it to its last sentence, session/finishing.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from personae.daemon.engines.base import GenerationRequest

if TYPE_CHECKING:
    from personae.daemon.service import Service
    from personae.daemon.session.finishing import Finisher


async def usage_and_finish(
    svc: Service, generation: GenerationRequest, text: str, finisher: Finisher | None = None
) -> tuple[dict[str, Any] | None, str]:
    finish = finisher.reason if finisher is not None else None
    counted = await svc.run("llm", svc.engines.llm.count_tokens, generation.messages, text)
    if counted is None:
        return None, finish or "stop"
    prompt, completion = counted
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if finish is not None:
        return usage, finish
    return usage, "length" if completion >= generation.params.max_tokens else "stop"
