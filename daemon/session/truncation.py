"""`conversation.item.truncate` checked before the character's memory is cut.

A client that stops playing a reply (the player barged in on its side) says how much of
it was heard; the daemon then remembers only that. Each way it can be wrong gets its own
error code, and nothing is changed:

- `item_not_found`: no reply of the session's recent history has that id;
- `invalid_content_index`: a reply item has one content part (text and its audio), 0;
- `audio_end_ms_out_of_range`: negative, or past the audio the daemon sent of the item
  (nobody heard audio that was never sent).

A truncate of the reply still in progress ends that reply first (session.py), so it is
in memory to be cut. A client that never truncates loses nothing: a reply cut by barge-in is remembered up
to the audio sent (reply.py), which is what a client playing on arrival has heard.
"""

from __future__ import annotations

from collections.abc import Callable

from personae.daemon.errors import ClientError
from personae.daemon.session.prompt import Turn
from personae.sdk import protocol as p


def check(event: p.ConversationItemTruncate, *, sent_ms: int | None) -> None:
    """`sent_ms`: the audio sent of the item, in ms (None: the daemon sent it none)."""
    if event.content_index != 0:
        raise ClientError(
            f"content_index {event.content_index} does not exist: a reply item has one "
            "content part, index 0",
            code="invalid_content_index",
        )
    limit = sent_ms or 0
    if not 0 <= event.audio_end_ms <= limit:
        raise ClientError(
            f"audio_end_ms {event.audio_end_ms} is outside the item's audio (0 to {limit} ms sent)",
            code="audio_end_ms_out_of_range",
        )


def truncate(
    history: list[Turn],
    event: p.ConversationItemTruncate,
    *,
    sent_ms: Callable[[str], int | None],
    heard_text: Callable[[str, int], str | None],
) -> p.ConversationItemTruncated:
    """The reply `event` names cut in `history` to what the player heard of it.

    `sent_ms(item_id)` is the audio sent of an item; `heard_text(item_id, end_ms)` the
    reply's text heard before `end_ms` (None: the reply's words are not known)."""
    for i, turn in enumerate(history):
        if turn.item_id == event.item_id and turn.speaker != "player":
            check(event, sent_ms=sent_ms(event.item_id))
            kept = heard_text(event.item_id, event.audio_end_ms)
            if kept is not None:
                history[i] = Turn(turn.speaker, kept, turn.item_id)
            return p.ConversationItemTruncated(
                item_id=event.item_id,
                content_index=event.content_index,
                audio_end_ms=event.audio_end_ms,
            )
    raise ClientError(f"no assistant item {event.item_id!r} to truncate", code="item_not_found")
