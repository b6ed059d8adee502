"""The messages an LLM sees for one reply: the character, the scene, the history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from personae.daemon.characters import Character
from personae.daemon.engines.base import ChatMessage


@dataclass(frozen=True, slots=True)
class Turn:
    """One line of the conversation. `speaker` is "player" or a character id."""

    speaker: str
    text: str
    item_id: str = ""


def build_messages(
    character: Character,
    history: Sequence[Turn],
    *,
    names: dict[str, str] | None = None,
    max_turns: int = 8,
    instructions: str | None = None,
    context: Sequence[str] = (),
) -> list[ChatMessage]:
    """System prompt, example lines, then the recent history from `character`'s seat.

    The character's own lines are the assistant's; the player's and other characters'
    lines are the user's, the latter prefixed with the speaker's name so the model
    knows who said what. Player text is never placed in the system role.
    """
    names = names or {}
    system = character.render_system_prompt()
    if context:
        system += "\n" + "\n".join(context)
    if instructions:
        system += "\nFor this reply: " + instructions
    messages = [ChatMessage("system", system)]
    for ex in character.examples:
        messages += [ChatMessage("user", ex.user), ChatMessage("assistant", ex.character)]
    recent = list(history)[-max_turns * 2 :] if max_turns else []
    for turn in recent:
        if turn.speaker == character.id:
            messages.append(ChatMessage("assistant", turn.text))
        elif turn.speaker == "player":
            messages.append(ChatMessage("user", turn.text))
        else:
            messages.append(
                ChatMessage("user", f"({names.get(turn.speaker, turn.speaker)} says) {turn.text}")
            )
    # Chat templates expect alternation; merge consecutive same-role messages.
    merged: list[ChatMessage] = []
    for m in messages:
        if merged and merged[-1].role == m.role and m.role != "system":
            merged[-1] = ChatMessage(m.role, merged[-1].content + "\n" + m.content)
        else:
            merged.append(m)
    return merged
