"""Chat completions of a character end on a complete sentence, as its spoken replies do.

The engine gets the character's budget plus `reply_finish_tokens`; the text is released
sentence by sentence (streamed or not), trimmed to its last complete sentence when the
grace runs out, and `finish_reason` is "length" whenever the budget ended it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from personae.daemon.characters import Character
from personae.daemon.engines.base import GenerationRequest
from personae.daemon.session import finishing
from personae.daemon.session.splitter import SentenceSplitter

if TYPE_CHECKING:
    from personae.daemon.openai_streaming import Reply
    from personae.daemon.service import Service


def finishing_reply(
    svc: Service,
    request: GenerationRequest,
    character: Character,
    said: Callable[[str], Awaitable[None]],
) -> Reply:
    from personae.daemon.openai_streaming import Reply

    grace = svc.settings.reply_finish_tokens
    # no early first piece: nothing is spoken here, so nothing need go out before its end
    finisher = finishing.Finisher(
        SentenceSplitter(), request.params.max_tokens, grace, early_first=False
    )
    return Reply(
        finishing.graced(request, svc.settings), character=character, said=said, finisher=finisher
    )


def api_finished(
    svc: Service,
    generation: GenerationRequest,
    stream: AsyncIterator[str],
    finisher: finishing.Finisher,
) -> AsyncIterator[str]:
    async def count(text: str) -> int | None:
        counted: Any = await svc.run("llm", svc.engines.llm.count_tokens, generation.messages, text)
        return None if counted is None else counted[1]

    return finishing.finished(stream, finisher, count)
