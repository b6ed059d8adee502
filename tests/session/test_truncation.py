"""conversation.item.truncate: each malformed one gets its own error code and changes
nothing; a good one cuts the character's memory at what was heard; a client that never
truncates is remembered up to the audio it was sent."""

from __future__ import annotations

import typing

import pytest

from personae.daemon.testing import FakeLLM, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p

REPLY = "First part here. Second part there. Third part too."


def user_text(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"audio_end_ms": -1}, "audio_end_ms_out_of_range"),
        ({"audio_end_ms": "past"}, "audio_end_ms_out_of_range"),
        ({"content_index": 1}, "invalid_content_index"),
        ({"content_index": -1}, "invalid_content_index"),
        ({"item_id": "item_nobody"}, "item_not_found"),
        ({"item_id": "player"}, "item_not_found"),
    ],
)
async def test_malformed_truncate_gets_a_precise_error_and_memory_is_untouched(
    change: dict, code: str
) -> None:
    async with running(fake_service(llm=FakeLLM(reply=lambda req: REPLY))) as h:
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
        item_id = h.of_type("npc.sentence")[0].item_id
        sent = done.response.audio_sent_ms
        fields = {"item_id": item_id, "audio_end_ms": 10, **change}
        if fields["audio_end_ms"] == "past":
            fields["audio_end_ms"] = sent + 1
        if fields["item_id"] == "player":  # the player's own line is no reply
            fields["item_id"] = h.of_type("conversation.item.created")[0].item.id
        before = list(h.session.history)
        h.send(p.ConversationItemTruncate(**fields))
        error = await h.wait_type("error")
    assert error.error.code == code, error.error
    assert code in typing.get_args(p.TruncateErrorCode)
    assert error.error.event_type == "conversation.item.truncate"
    assert h.session.history == before
    assert not h.of_type("conversation.item.truncated")


async def test_truncate_at_the_end_of_the_audio_sent_keeps_the_whole_reply() -> None:
    async with running(fake_service(llm=FakeLLM(reply=lambda req: REPLY))) as h:
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
        item_id = h.of_type("npc.sentence")[0].item_id
        h.send(
            p.ConversationItemTruncate(item_id=item_id, audio_end_ms=done.response.audio_sent_ms)
        )
        truncated = await h.wait_type("conversation.item.truncated")
    assert truncated.audio_end_ms == done.response.audio_sent_ms
    assert h.session.history[-1].text == REPLY


async def test_without_truncate_a_barged_in_reply_is_remembered_as_far_as_it_was_sent() -> None:
    llm = FakeLLM(reply=lambda req: "A long answer. " * 20)
    async with running(fake_service(llm=llm, audio_lead_ms=200)) as h:
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_audio.delta")
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        done = await h.wait_type("response.done")
    assert done.response.status == "cancelled"
    sent = done.response.audio_sent_ms
    starts = [s.audio_start_ms for s in h.of_type("npc.sentence")]
    heard = [t for t in h.session.history if t.speaker != "player"][-1].text
    assert heard == " ".join(["A long answer."] * sum(1 for s in starts if s < sent))
    assert 0 < heard.count("A long answer.") < 20


async def test_truncate_of_the_reply_still_playing_ends_it_and_keeps_what_was_heard() -> None:
    """A client that stops playback mid-reply may send only the truncate (no
    response.cancel first): the reply ends, and memory keeps the sentences heard."""
    llm = FakeLLM(reply=lambda req: "A long answer. " * 20)
    async with running(fake_service(llm=llm, audio_lead_ms=200)) as h:
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        await h.wait_type("npc.sentence")
        await h.wait_type("response.output_audio.delta")
        first = h.of_type("npc.sentence")[0]
        heard_ms = first.audio_start_ms + 1  # the player heard the start of sentence one
        h.send(p.ConversationItemTruncate(item_id=first.item_id, audio_end_ms=heard_ms))
        done = await h.wait_type("response.done")
        truncated = await h.wait_type("conversation.item.truncated")
    assert done.response.status == "cancelled"
    assert done.response.status_reason == "client_cancelled"
    assert truncated.item_id == first.item_id and truncated.audio_end_ms == heard_ms
    assert not h.of_type("error")
    heard = [t for t in h.session.history if t.speaker != "player"][-1]
    assert heard.item_id == first.item_id and heard.text == "A long answer."
