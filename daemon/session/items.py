"""`conversation.item.create` checked before anything is remembered.

A message item adds a line to the conversation: the player's (heard by the scene, as a
spoken turn is) or a character's (a line the game wrote for it). It needs text within
`max_text_chars` that moderation allows; system items are refused (instructions go in
the session or the response), and a character's item names a character of the cast
that the key may use. OpenAI clients name no speaker: their assistant items are the
pinned character's, or the last speaker's.
"""

from __future__ import annotations

from collections.abc import Callable

from personae.daemon.errors import ClientError, LimitExceededError
from personae.sdk import protocol as p


def accepted(
    item: p.Item,
    *,
    max_chars: int,
    moderate: Callable[[str], None],
    check: Callable[[list[str]], None],
    openai: bool,
    speaker: str | None,
) -> tuple[p.Item, str]:
    """The item with its id (and, for an OpenAI client, its speaker), and its text.

    `moderate` and `check` raise for refused text and characters; `speaker` is whom an
    OpenAI client's assistant item is (the pinned character or the last speaker)."""
    text = item.text.strip()
    if not text:
        raise ClientError("a message item needs text content", code="invalid_item")
    if len(text) > max_chars:
        raise LimitExceededError(
            f"text of {len(text)} characters exceeds {max_chars}", code="text_too_long"
        )
    if item.role == "system":
        raise ClientError(
            "system items are not accepted; use session or response instructions",
            code="invalid_item",
        )
    moderate(text)
    item = item.model_copy(update={"id": item.id or p.new_id("item")})
    if item.role == "assistant" and item.character is None and openai:
        item = item.model_copy(update={"character": speaker})
    if item.role == "assistant":
        if item.character is None:
            raise ClientError("an assistant item must name its character", code="invalid_item")
        check([item.character])
    return item, text
