"""The SDK's Reply: what a turn brought, partial transcripts included."""

from __future__ import annotations

from personae.sdk import protocol as p
from personae.sdk.client import Reply


def test_partial_transcripts_grow_with_each_delta() -> None:
    events = [
        p.TranscriptionDelta(item_id="i", delta="Bram,"),
        p.TranscriptionDelta(item_id="i", delta=" the bridge fell."),
        p.TranscriptionCompleted(item_id="i", transcript="Bram, the bridge fell."),
    ]
    reply = Reply(p.ResponseInfo(id="r", character="bram"), events=events)  # type: ignore[arg-type]
    assert reply.partial_transcripts == ["Bram,", "Bram, the bridge fell."]
    assert Reply(p.ResponseInfo(id="r", character="bram")).partial_transcripts == []
