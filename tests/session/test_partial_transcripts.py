"""Partial transcripts while the player speaks, from the turn's pieces."""

from __future__ import annotations

from personae.daemon.testing import FakeSTT
from personae.daemon.testing.fakes import silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p


async def test_a_long_turn_is_transcribed_in_deltas_before_it_ends() -> None:
    phrases = iter(["Bram, the bridge fell.", "Can you mend it?"])
    stt = FakeSTT(text_for=lambda audio: next(phrases, ""))
    svc = fake_service(stt=stt, stt_piece_min_s=0.5, vad_silence_ms=800)
    async with running(svc) as h:
        for chunk in (tone(1.0), silence(0.4), tone(1.0), silence(1.0)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        final = await h.wait_type("conversation.item.input_audio_transcription.completed")
        deltas = h.of_type("conversation.item.input_audio_transcription.delta")
        assert [d.delta for d in deltas] == ["Bram, the bridge fell.", " Can you mend it?"]
        assert final.transcript == "Bram, the bridge fell. Can you mend it?"
        assert {d.item_id for d in deltas} == {final.item_id}
        order = [e.type for e in h.events]
        assert order.index(deltas[0].type) < order.index(final.type)


async def test_a_transcript_that_reads_differently_is_not_sent_as_a_delta() -> None:
    # the piece at the pause hears "Bram", the whole turn is heard as "Brom, hello"
    stt = FakeSTT(["Bram", "Brom, hello"])
    svc = fake_service(stt=stt, vad_silence_ms=800)  # pieces of 15 s: none is kept
    async with running(svc) as h:
        for chunk in (tone(0.6), silence(0.4), tone(0.6), silence(1.0)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        final = await h.wait_type("conversation.item.input_audio_transcription.completed")
        sent = "".join(
            d.delta for d in h.of_type("conversation.item.input_audio_transcription.delta")
        )
        assert final.transcript.startswith(sent)
