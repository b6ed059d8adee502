"""A chat completion in character: `model` is a character id.

The character's prompt, memory, state, adapter and generation parameters apply (the
request's temperature, top_p, max_tokens, stop and seed override them). `user` is the
player whose state and memory apply; the last user message is heard by the character
and the reply is logged, as in a realtime session, under one turn-log session per
player. System messages become the reply's instructions: player text never reaches the
system prompt as the character's own.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from personae.daemon.characters import Character
from personae.daemon.openai_finishing import finishing_reply
from personae.daemon.openai_requests import (
    ChatCompletionRequest,
    MessageIn,
    OpenAIError,
    params_for,
)
from personae.daemon.openai_streaming import Reply
from personae.daemon.session.prompt import Turn

if TYPE_CHECKING:
    from personae.daemon.service import Service


async def character_reply(svc: Service, body: ChatCompletionRequest) -> Reply:
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
