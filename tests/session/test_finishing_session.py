"""A spoken reply cut by its budget: no fragment is sent, spoken or remembered."""

from __future__ import annotations

from personae.daemon.testing import FakeLLM, FakeTTS
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import openai_events as oe
from personae.sdk import protocol as p

#: a first sentence, then one that never ends within Bram's 48 tokens + 24 of grace
RAMBLE = "Leave it on the bench. " + "the merchant walked along the river " * 15


def user_text(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


async def test_a_cut_reply_sends_and_speaks_only_its_complete_sentences() -> None:
    llm, tts = FakeLLM(reply=lambda req: RAMBLE), FakeTTS()
    async with running(fake_service(llm=llm, tts=tts)) as h:
        h.send(user_text("Bram, can you fix my sword?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
        n = len(h.events)
        h.send(user_text("Bram, and then?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done", after=n)
    kept = "Leave it on the bench."
    budget = llm.requests[0].params.max_tokens  # the engine was asked for budget + grace
    assert budget == 48 + 24
    assert done.response.status == "completed"
    assert done.response.output_text == kept
    first = h.events[:n]
    deltas = [e.delta for e in first if isinstance(e, p.OutputTextDelta)]
    assert "".join(deltas) == kept
    assert [e.text for e in first if isinstance(e, p.NpcSentence)] == [kept]
    assert next(text for text, _ in tts.spoken) == kept
    assert not any("merchant" in text for text, _ in tts.spoken)
    # memory holds what was said, not what was generated
    remembered = "\n".join(m.content for m in llm.requests[1].messages)
    assert kept in remembered and "merchant" not in remembered


async def test_an_openai_realtime_reply_transcript_has_no_fragment() -> None:
    llm = FakeLLM(reply=lambda req: RAMBLE)
    async with running(fake_service(llm=llm)) as h:
        h.send(
            '{"type": "session.update", "session": {"type": "realtime", '
            '"output_modalities": ["audio"]}}'
        )
        h.send(user_text("Bram, can you fix my sword?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
    transcript = [e.delta for e in h.events if isinstance(e, oe.OutputAudioTranscriptDelta)]
    assert "".join(transcript) == "Leave it on the bench."
    assert done.response.output_text == "Leave it on the bench."
