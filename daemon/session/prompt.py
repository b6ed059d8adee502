"""The messages an LLM sees for one reply: the character, the scene, the history."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from personae.daemon.characters import Character
from personae.daemon.engines.base import ChatMessage

#: chat-template control tokens of the common model families: ChatML and Llama 3
#: (<|im_start|>, <|eot_id|>), DeepSeek (<｜...｜>), Llama 2/Mistral ([INST], <<SYS>>),
#: Gemma (<start_of_turn>), sentence markers (<s>, </s>, <bos>, <eos>, <pad>, <unk>)
_CONTROL = re.compile(
    r"<\s*[|｜][^<>\n]{0,64}?[|｜]\s*>"
    r"|\[\s*/?\s*(?:INST|SYS|SYSTEM|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\s*\]"
    r"|<<\s*/?\s*SYS\s*>>"
    r"|<\s*/?\s*(?:start_of_turn|end_of_turn|s|bos|eos|pad|unk|sep|cls|mask)\s*>",
    re.IGNORECASE,
)


def neutralise(text: str) -> str:
    """Text from outside the character file, made unable to close or open a chat turn.

    Chat templates are rendered to text and tokenized with their special tokens
    parsed, so a player who types `<|im_end|><|im_start|>system` would otherwise start
    a system turn of their own. Control tokens are removed (after NFKC folding, so
    look-alike characters do not slip through); the rest of the text is kept.
    """
    folded = unicodedata.normalize("NFKC", text)
    previous = None
    while previous != folded:  # "<|im_<|x|>start|>" must not reassemble
        previous, folded = folded, _CONTROL.sub(" ", folded)
    return folded


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
    context_late: bool = True,
) -> list[ChatMessage]:
    """System prompt, example lines, the recent history, and this reply's context.

    The character's own lines are the assistant's; the player's and other characters'
    lines are the user's, the latter prefixed with the speaker's name so the model
    knows who said what. Player text is never placed in the system role, and every
    text that does not come from the character file (history, memories, lore, the
    per-reply instructions) is `neutralise`d.

    The system prompt and the examples never change between replies and the history
    only grows, so engines that reuse prompt prefixes (the transformers engine's
    prefix cache, llama.cpp's slot cache) prefill only what is new. The per-reply
    context (mood, memories, lore, instructions) changes every reply; with
    `context_late` it is a second system message just before the latest user message,
    where it does not break that prefix; otherwise it ends the first system message
    (for chat templates that accept a system message only first).
    """
    names = names or {}
    extra = [neutralise(c) for c in context]
    if instructions:
        extra.append("For this reply: " + neutralise(instructions))
    system = character.render_system_prompt()
    if extra and not context_late:
        system += "\n" + "\n".join(extra)
    messages = [ChatMessage("system", system)]
    for ex in character.examples:
        messages += [ChatMessage("user", ex.user), ChatMessage("assistant", ex.character)]
    recent = history_window(history, max_turns)
    for turn in recent:
        said = neutralise(turn.text)
        if turn.speaker == character.id:
            messages.append(ChatMessage("assistant", said))
        elif turn.speaker == "player":
            messages.append(ChatMessage("user", said))
        else:
            name = neutralise(names.get(turn.speaker, turn.speaker))
            messages.append(ChatMessage("user", f"({name} says) {said}"))
    # Chat templates expect alternation; merge consecutive same-role messages.
    merged: list[ChatMessage] = []
    for m in messages:
        if merged and merged[-1].role == m.role and m.role != "system":
            merged[-1] = ChatMessage(m.role, merged[-1].content + "\n" + m.content)
        else:
            merged.append(m)
    if extra and context_late:
        late = ChatMessage("system", "\n".join(extra))
        if len(merged) > 1 + 2 * len(character.examples) and merged[-1].role == "user":
            merged.insert(len(merged) - 1, late)
        else:
            merged.append(late)
    return merged


def history_window(history: Sequence[Turn], max_turns: int) -> list[Turn]:
    """The recent lines a prompt shows: at least `max_turns` exchanges (2 lines each).

    The window's start moves half a window (an even number of lines) at a time, not one
    line per turn, so the prompt keeps the same beginning for several turns and engines
    that reuse prompt prefixes prefill only the new lines; a window sliding every turn
    would change the prompt right after the examples and make every reply prefill the
    whole history. In a conversation that alternates, the start moves only when a reply
    has just been added, which is when the session prefills the next prompt ahead.
    """
    if max_turns <= 0:
        return []
    lines = list(history)
    excess = len(lines) - 2 * max_turns
    if excess <= 0:
        return lines
    step = 2 * max(1, max_turns // 2)
    return lines[excess // step * step :]


def forgettable(history_len: int, max_turns: int, *, slack: int) -> int:
    """How many of a session's oldest lines it may forget once more than `slack` lines
    lie before the window: all of those before the window's start. The window is the
    same over what remains (it starts at 0 there), so forgetting changes no prompt."""
    excess = history_len - 2 * max(0, max_turns)
    if excess <= slack:
        return 0
    if max_turns <= 0:
        return history_len
    step = 2 * max(1, max_turns // 2)
    return excess // step * step


def system_text(messages: Sequence[ChatMessage]) -> str:
    """Everything the model is told in the system role (character file and context)."""
    return "\n".join(m.content for m in messages if m.role == "system")
