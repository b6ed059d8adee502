"""The session state machine with scripted fakes: turns, routing, barge-in, bad input."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from personae.daemon.session.prompt import system_text
from personae.daemon.testing import FakeLLM, FakeSTT, FakeTTS, silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p
from personae.sdk.framing import Framing


def user_text(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


async def test_text_turn_streams_text_audio_and_done_in_order() -> None:
    llm = FakeLLM(reply=lambda req: "Leave it on the bench. Bent steel can be saved.")
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram, can you fix my sword?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
    assert done.response.status == "completed"
    assert done.response.character == "bram"
    assert done.response.output_text == "Leave it on the bench. Bent steel can be saved."
    types = [e.type for e in h.events]
    assert (
        types.index("npc.route")
        < types.index("response.created")
        < types.index("response.output_text.delta")
        < types.index("response.output_audio.delta")
        < types.index("response.done")
    )
    route = h.of_type("npc.route")[0]
    assert route.reason == "addressed" and set(route.scores) == {"bram", "mara", "wren"}
    # every response event names the speaker
    for e in h.events:
        if hasattr(e, "response_id"):
            assert e.character == "bram"
    sentences = h.of_type("npc.sentence")
    assert [s.text for s in sentences] == ["Leave it on the bench.", "Bent steel can be saved."]
    assert sentences[1].audio_start_ms == sentences[0].audio_duration_ms
    audio = b"".join(e.delta for e in h.of_type("response.output_audio.delta"))
    sent_ms = len(audio) / 2 / 24000 * 1000  # default output rate
    assert abs(done.response.audio_sent_ms - sent_ms) <= 2
    # the character's own voice config reached TTS
    assert llm.requests[0].messages[0].content.startswith("You are Bram.")


async def test_history_carries_between_turns_and_other_speakers_are_named() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram, hello."))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        n = len(h.events)
        h.send(user_text("Mara, what did he say?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done", after=n)
    assert done.response.character == "mara"
    last = llm.requests[-1].messages
    contents = "\n".join(m.content for m in last)
    assert "(Bram says) Aye." in contents
    assert last[-1].role == "user" and last[-1].content.endswith("Mara, what did he say?")


async def test_similarity_routing_and_pinning() -> None:
    async with running(fake_service()) as h:
        h.send(user_text("Where are the maps and records of the archive?"))
        h.send(p.ResponseCreate())
        route = await h.wait_type("npc.route")
        assert route.character == "mara" and route.reason == "similarity"
        await h.wait_type("response.done")
        n = len(h.events)
        h.send(p.SessionUpdate(session=p.SessionConfig(pinned_character="wren")))
        h.send(user_text("Bram, the maps please."))
        h.send(p.ResponseCreate())
        route = await h.wait_type("npc.route", after=n)
        assert route.character == "wren" and route.reason == "pinned"


async def test_scene_limits_who_can_answer() -> None:
    async with running(fake_service()) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(characters=["mara", "wren"])))
        h.send(user_text("Bram, fix my sword."))  # Bram is not in the scene
        h.send(p.ResponseCreate())
        route = await h.wait_type("npc.route")
    assert route.character in {"mara", "wren"} and set(route.scores) == {"mara", "wren"}


async def test_voice_activity_ends_a_turn_and_the_reply_follows() -> None:
    stt = FakeSTT(["Hey Wren, any news?"])
    async with running(fake_service(stt=stt)) as h:
        for chunk in (silence(0.3), tone(1.0), silence(0.6)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        done = await h.wait_type("response.done")
    types = [e.type for e in h.events]
    assert (
        types.index("input_audio_buffer.speech_started")
        < types.index("input_audio_buffer.speech_stopped")
        < types.index("conversation.item.input_audio_transcription.completed")
        < types.index("npc.route")
    )
    assert done.response.character == "wren"
    seconds, hotwords = stt.calls[0]
    assert 0.9 <= seconds <= 1.7  # the tone plus prefix padding and the silence tail
    assert "Wren" in hotwords and "Mara" in hotwords


async def test_push_to_talk_commit_then_response_create() -> None:
    stt = FakeSTT(["Mara, where is the mill?"])
    async with running(fake_service(stt=stt)) as h:
        h.send(
            p.SessionUpdate(session=p.SessionConfig(turn_detection=None, input_sample_rate=24000))
        )
        await h.wait_type("session.updated")
        h.send(p.InputAudioBufferAppend(audio=tone(0.5, rate=24000)))
        h.send(p.InputAudioBufferCommit())
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
    assert not h.of_type("input_audio_buffer.speech_started")  # no VAD in push-to-talk
    assert done.response.character == "mara"
    assert abs(stt.calls[0][0] - 0.5) < 0.05  # resampled 24 kHz -> 16 kHz, duration kept


async def test_empty_commit_is_an_error_and_session_continues() -> None:
    async with running(fake_service()) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=None)))
        h.send(p.InputAudioBufferCommit(event_id="evt_1"))
        err = await h.wait_type("error")
        assert err.error.code == "input_audio_buffer_commit_empty" and err.error.event_id == "evt_1"
        h.send(user_text("Hello Bram"))
        h.send(p.ResponseCreate())
        assert (await h.wait_type("response.done")).response.status == "completed"


async def test_barge_in_cancels_reply_and_no_more_audio_of_it_arrives() -> None:
    def reply(req):
        long = "long story" in req.messages[-1].content.splitlines()[-1]
        return " ".join(["The forge is hot today."] * 12) if long else "Fine."

    llm = FakeLLM(reply=reply, token_delay_s=0.02)
    stt = FakeSTT(["Bram, tell me a long story.", "Wait, stop."])
    service = fake_service(llm=llm, stt=stt, audio_lead_ms=200, audio_chunk_ms=40)
    async with running(service) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        first = await h.wait_type("response.output_audio.delta")
        rid = first.response_id
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        done = await h.wait_for(lambda e: e.type == "response.done" and e.response.id == rid)
        done_at = h.events.index(done)
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        second = await h.wait_for(lambda e: e.type == "response.done" and e.response.id != rid)
        await asyncio.sleep(0.2)
    assert done.response.status == "cancelled" and done.response.status_reason == "turn_detected"
    later = [e for e in h.events[done_at:] if getattr(e, "response_id", None) == rid]
    assert later == [], "audio of a cancelled response arrived after its response.done"
    sent = sum(
        len(e.delta)
        for e in h.events[:done_at]
        if e.type == "response.output_audio.delta" and e.response_id == rid
    )
    assert done.response.audio_sent_ms == round(sent / 2 / 24000 * 1000)
    # paced audio: far less than the whole reply went out before the barge-in
    assert done.response.audio_sent_ms < 5000
    started = h.events.index(h.of_type("input_audio_buffer.speech_started")[1])
    assert started < done_at
    assert second.response.status == "completed"
    # the model stopped generating the cancelled reply
    assert len(llm.requests) == 2


async def test_talking_over_a_reply_whose_generation_is_over_still_cancels_it() -> None:
    # The LLM and TTS finish at once, but the audio goes out at the pace of playback:
    # until the last of it is sent the player is still hearing the reply.
    story = " ".join(["The forge is hot today."] * 12)
    llm = FakeLLM(reply=lambda req: story if len(llm.requests) == 1 else "Fine.")
    stt = FakeSTT(["Wait, stop."])
    service = fake_service(
        llm=llm, stt=stt, audio_lead_ms=200, audio_chunk_ms=40, send_queue_frames=4096
    )
    async with running(service) as h:
        h.send(user_text("Bram, tell me a long story."))
        h.send(p.ResponseCreate())
        first = await h.wait_type("response.output_audio.delta")
        rid = first.response_id
        await asyncio.sleep(0.3)  # generation is long over; playback is not
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        done = await h.wait_for(lambda e: e.type == "response.done" and e.response.id == rid)
        done_at = h.events.index(done)
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        second = await h.wait_for(lambda e: e.type == "response.done" and e.response.id != rid)
    assert done.response.status == "cancelled" and done.response.status_reason == "turn_detected"
    assert not [e for e in h.events[done_at:] if getattr(e, "response_id", None) == rid]
    assert done.response.audio_sent_ms < 2000  # of about 14 s
    assert second.response.status == "completed"
    # the story is remembered only as far as it was heard
    remembered = [m.content for m in llm.requests[1].messages if m.role == "assistant"]
    assert remembered and remembered[-1].count("The forge is hot today.") < 4


@pytest.mark.parametrize("prime", [True, False])
async def test_the_next_prompt_is_prefilled_once_a_reply_is_out(prime: bool) -> None:
    llm = FakeLLM(reply=lambda req: "Iron does not lie.")
    async with running(fake_service(llm=llm, llm_prime_history=prime)) as h:
        h.send(user_text("Bram, what is that?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        await asyncio.sleep(0.5)
        primed = list(llm.primed)
        h.send(user_text("And this one?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done", after=len(h.events))
    if not prime:
        assert primed == []
        return
    assert len(primed) == 1 and primed[0].adapter == llm.requests[0].adapter
    ahead = primed[0].messages
    assert ahead[-1].role == "assistant" and ahead[-1].content == "Iron does not lie."
    # the primed prompt is exactly where the next reply's prompt begins: only the new
    # context and the player's words are left to prefill
    later = llm.requests[1].messages
    assert later[: len(ahead)] == ahead
    assert [m.role for m in later[len(ahead) :]] == ["system", "user"]


async def test_a_client_that_leaves_after_its_reply_gets_no_prefill() -> None:
    llm = FakeLLM(reply=lambda req: "Iron does not lie.")
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram, what is that?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    await asyncio.sleep(0.3)
    assert llm.primed == []


async def test_response_cancel_and_cancel_without_response() -> None:
    llm = FakeLLM(reply=lambda req: "word " * 200, token_delay_s=0.01)
    async with running(fake_service(llm=llm)) as h:
        h.send(p.ResponseCancel())
        err = await h.wait_type("error")
        assert err.error.code == "response_cancel_not_active"
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_text.delta")
        h.send(p.ResponseCancel())
        done = await h.wait_type("response.done")
    assert done.response.status == "cancelled" and done.response.status_reason == "client_cancelled"


async def test_engine_failure_mid_reply_is_an_error_event_and_session_survives() -> None:
    llm = FakeLLM(reply=lambda req: "one two three four five six.", fail_after=3)
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
        err = await h.wait_type("error")
        assert done.response.status == "failed"
        assert err.error.type == "server_error" and "fake LLM failure" in err.error.message
        llm.fail_after = None
        n = len(h.events)
        h.send(p.ResponseCreate(response=p.ResponseOptions(character="mara")))
        ok = await h.wait_type("response.done", after=n)
        assert ok.response.status == "completed" and ok.response.character == "mara"


async def test_stalled_engine_times_out() -> None:
    llm = FakeLLM(stall_s=5.0)
    async with running(fake_service(llm=llm, reply_timeout_s=0.3)) as h:
        h.send(p.ResponseCreate(response=p.ResponseOptions(character="bram")))
        done = await h.wait_type("response.done")
        err = await h.wait_type("error")
    assert done.response.status == "failed" and done.response.status_reason == "timeout"
    assert err.error.code == "reply_timeout" and err.error.retryable


async def test_text_only_modality_sends_no_audio() -> None:
    tts = FakeTTS()
    async with running(fake_service(tts=tts)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(output_modalities=["text"])))
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert not h.of_type("response.output_audio.delta") and tts.spoken == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xc1\xff\x00", "malformed_frame"),
        ("{not json", "malformed_frame"),
        ("[1, 2]", "malformed_frame"),
        ('{"no_type": 1}', "missing_type"),
        ('{"type": "response.explode"}', "unknown_event"),
        ('{"type": "response.create", "response": {"character": 42}}', "invalid_event"),
        ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "invalid_event"),
        (
            msgpack.packb({"type": "input_audio_buffer.append", "audio": b"\x00\x01\x02"}),
            "invalid_audio",
        ),
        ('{"type": "response.create", "response": {"character": "nobody"}}', "unknown_character"),
        (
            '{"type": "session.update", "session": {"characters": ["bram", "ghost"]}}',
            "unknown_character",
        ),
        ('{"type": "session.update", "session": {"input_sample_rate": 5}}', "invalid_event"),
    ],
)
async def test_bad_input_gets_a_precise_error_and_session_stays_usable(
    frame: str | bytes, code: str
) -> None:
    async with running(fake_service(), Framing.JSON) as h:
        h.send(frame)
        err = await h.wait_type("error")
        assert err.error.code == code, err.error.message
        assert err.error.message
        h.send(user_text("Bram, still there?"))
        h.send(p.ResponseCreate())
        assert (await h.wait_type("response.done")).response.status == "completed"


async def test_oversized_frame_closes_with_1009() -> None:
    async with running(fake_service(max_frame_bytes=4096)) as h:
        h.send(p.InputAudioBufferAppend(audio=bytes(8192)))
        task = asyncio.all_tasks()
        await asyncio.sleep(0.1)
    assert h.closed is not None and h.closed.code == 1009
    assert task


async def test_truncate_keeps_only_what_the_player_heard() -> None:
    llm = FakeLLM(reply=lambda req: "First part here. Second part there. Third part too.")
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
        sentences = h.of_type("npc.sentence")
        item_id = sentences[0].item_id
        h.send(
            p.ConversationItemTruncate(
                item_id=item_id, audio_end_ms=sentences[1].audio_start_ms - 1
            )
        )
        await h.wait_type("conversation.item.truncated")
        assert done.response.output_text.startswith("First part")
        assert h.session.history[-1].text == "First part here."


def seconds_heard(audio) -> str:
    return f"Bram, {len(audio) / 16000:.1f} seconds"


async def test_transcription_starts_at_the_pause_and_is_used_when_the_turn_ends() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    async with running(fake_service(stt=stt, vad_prefix_ms=0)) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.6)))
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
        await h.wait_type("response.done")
    # one transcription, of the speech without the silence that ended the turn
    assert len(stt.calls) == 1
    assert 0.9 <= stt.calls[0][0] <= 1.1
    assert done.transcript == f"Bram, {stt.calls[0][0]:.1f} seconds"


async def test_speech_after_a_short_pause_discards_the_early_transcript() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    async with running(fake_service(stt=stt, vad_prefix_ms=0, vad_silence_ms=400)) as h:
        for chunk in (tone(1.0), silence(0.2), tone(1.0), silence(0.6)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
    heard = float(done.transcript.split()[1])
    assert heard >= 2.1, "the transcript must cover speech after the pause"
    assert len(h.of_type("conversation.item.input_audio_transcription.completed")) == 1


async def test_without_early_transcription_the_whole_turn_is_transcribed_once() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    async with running(fake_service(stt=stt, vad_prefix_ms=0, stt_early=False)) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.6)))
        await h.wait_type("conversation.item.input_audio_transcription.completed")
    assert len(stt.calls) == 1 and stt.calls[0][0] >= 1.25  # includes the silence tail


async def test_a_long_turn_is_transcribed_piece_by_piece_and_only_the_tail_remains() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    service = fake_service(stt=stt, vad_prefix_ms=0, vad_silence_ms=600, stt_piece_min_s=1.0)
    async with running(service) as h:
        for chunk in (tone(1.5), silence(0.4), tone(1.2), silence(0.4), tone(1.0), silence(0.8)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
        await h.wait_type("response.done")
    seconds = [round(c[0], 1) for c in stt.calls]
    # three pieces, each decoded once
    assert len(stt.calls) == 3, seconds
    assert 1.4 <= seconds[0] <= 1.6 and 1.5 <= seconds[1] <= 1.7 and 1.3 <= seconds[2] <= 1.5
    assert done.transcript == " ".join(f"Bram, {s:.1f} seconds" for s, _ in stt.calls)
    assert h.session.history[-2].text == done.transcript


async def test_a_turn_shorter_than_a_piece_is_transcribed_whole_at_its_last_pause() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    async with running(fake_service(stt=stt, vad_prefix_ms=0, vad_silence_ms=600)) as h:
        for chunk in (tone(1.5), silence(0.4), tone(1.2), silence(0.8)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
    assert done.transcript.count("Bram") == 1 and float(done.transcript.split()[1]) >= 3.0


async def test_push_to_talk_transcribes_at_the_pause_and_the_commit_finds_it_ready() -> None:
    stt = FakeSTT(text_for=seconds_heard, delay_s=0.2)
    async with running(fake_service(stt=stt)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=None)))
        await h.wait_type("session.updated")
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.3)))
        await asyncio.sleep(0.3)  # the player lets go of the button a moment later
        h.send(p.InputAudioBufferCommit())
        h.send(p.ResponseCreate())
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
        decoded_by_then = len(stt.calls)
        await h.wait_type("response.done")
        # speech after a pause, then the commit mid-speech: the whole buffer, once more
        for chunk in (tone(1.0), silence(0.3), tone(0.5)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        h.send(p.InputAudioBufferCommit())
        second = await h.wait_for(
            lambda e: (
                e.type == "conversation.item.input_audio_transcription.completed"
                and e.item_id != done.item_id
            )
        )
    # the commit found the pause's transcript ready: the 1.0 s of speech, decoded once
    assert done.transcript.startswith("Bram, 1.0") and decoded_by_then == 1
    assert float(second.transcript.split()[1]) >= 1.7
    assert len(h.of_type("conversation.item.input_audio_transcription.completed")) == 2


async def test_audio_sent_faster_than_real_time_transcribes_no_stale_pause() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    async with running(fake_service(stt=stt)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(turn_detection=None)))
        await h.wait_type("session.updated")
        for chunk in (tone(1.0), silence(0.3), tone(1.0), silence(0.3)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        h.send(p.InputAudioBufferCommit())
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
    assert len(stt.calls) == 1 and float(done.transcript.split()[1]) >= 2.0


async def test_clearing_the_buffer_mid_turn_stops_its_transcription() -> None:
    stt = FakeSTT(text_for=seconds_heard, delay_s=0.3)
    service = fake_service(stt=stt, vad_prefix_ms=0, vad_silence_ms=600, stt_piece_min_s=1.0)
    async with running(service) as h:
        for chunk in (tone(1.5), silence(0.4), tone(1.0), silence(0.2)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        h.send(p.InputAudioBufferClear())
        await h.wait_type("input_audio_buffer.cleared")
        assert h.session.listener.pieces is None
        await asyncio.sleep(0.7)  # what was running finishes; nothing else starts
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("stt ")]
        assert not h.of_type("conversation.item.input_audio_transcription.completed")
    assert len(stt.calls) <= 2


async def test_barge_in_during_a_piece_keeps_the_new_turn_whole() -> None:
    stt = FakeSTT(text_for=seconds_heard, delay_s=0.05)
    llm = FakeLLM(reply=lambda req: "A long answer. " * 20)
    # paced playout (15 s of reply audio): unpaced, the whole reply can be sent before
    # the player's first words are heard, and there is nothing left to cancel
    service = fake_service(
        stt=stt,
        llm=llm,
        vad_prefix_ms=0,
        vad_silence_ms=600,
        stt_piece_min_s=1.0,
        audio_lead_ms=500,
    )
    async with running(service) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.8)))
        await h.wait_type("response.output_audio.delta")
        # the player talks over the reply, with a pause in the middle
        for chunk in (tone(1.5), silence(0.4), tone(1.0), silence(0.8)):
            h.send(p.InputAudioBufferAppend(audio=chunk))
        await h.wait_for(
            lambda e: (
                e.type == "conversation.item.input_audio_transcription.completed"
                and e.transcript.count("Bram") == 2
            )
        )
        done = [e for e in h.of_type("response.done")]
        assert done and done[0].response.status == "cancelled"
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("stt ")]


async def test_the_commit_button_during_a_pause_reuses_that_pause_s_transcript() -> None:
    stt = FakeSTT(text_for=seconds_heard)
    async with running(fake_service(stt=stt, vad_prefix_ms=0, vad_silence_ms=600)) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(1.0)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.2)))
        await asyncio.sleep(0.1)
        h.send(p.InputAudioBufferCommit())
        done = await h.wait_type("conversation.item.input_audio_transcription.completed")
    assert len(stt.calls) == 1 and done.transcript.startswith("Bram, 1.0")


async def test_game_event_moves_perceivers_feelings_and_reaches_the_prompt() -> None:
    llm = FakeLLM(reply=lambda req: "Oh no.")
    async with running(fake_service(llm=llm)) as h:
        h.send(
            p.GameEvent(
                name="bridge_collapsed",
                description="The old bridge fell into the river.",
                characters=["bram"],
                data={"emotions": {"fear": 0.8}, "importance": 0.9},
            )
        )
        emotion = await h.wait_type("npc.emotion")
        assert emotion.character == "bram" and emotion.dominant == "fear"
        assert not [e for e in h.of_type("npc.emotion") if e.character != "bram"]
        h.send(p.ResponseCreate(response=p.ResponseOptions(character="bram")))
        await h.wait_type("response.done")
        h.send(p.GameEvent(name="gift", data={"trust": "lots"}))
        err = await h.wait_type("error")
    system = system_text(llm.requests[0].messages)
    assert "bridge" in system.lower()  # remembered and recalled into the prompt
    assert err.error.code == "invalid_event" and "trust" in err.error.message


async def test_state_and_memory_outlive_the_session() -> None:
    llm = FakeLLM(reply=lambda req: "Noted.")
    service = fake_service(llm=llm)
    async with running(service) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(player_id="p-42")))
        h.send(user_text("Mara, I absolutely love your wonderful maps! Thank you so much!"))
        h.send(p.ResponseCreate())
        first = await h.wait_for(lambda e: e.type == "npc.emotion" and e.character == "mara")
    async with running(service) as h:  # a new session, the same player
        h.send(p.SessionUpdate(session=p.SessionConfig(player_id="p-42")))
        h.send(user_text("Mara, hello again."))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    system = system_text(llm.requests[-1].messages)
    assert "wonderful maps" in system  # the notable line became a memory
    assert first.dominant == "joy"
    # another player starts fresh
    async with running(service) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(player_id="someone-else")))
        h.send(user_text("Mara, hello."))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert "wonderful maps" not in system_text(llm.requests[-1].messages)


async def test_lore_enters_the_prompt_when_its_keys_are_mentioned() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram, how is the weather?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        n = len(h.events)
        h.send(user_text("Bram, what happened at the old mill?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done", after=n)
    # the cast's mill entry (keys "mill", "lights") names the miller Bram carried out
    assert "Harlan Ashby" not in system_text(llm.requests[0].messages)
    assert "Harlan Ashby" in system_text(llm.requests[1].messages)


async def test_metrics_count_stages_replies_errors_and_sessions() -> None:
    service = fake_service()
    async with running(service) as h:
        h.send(user_text("Bram, hello"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        h.send('{"type": "nope"}')
        await h.wait_type("error")
        assert service.metrics.value("personae_active_sessions") == 1
    m = service.metrics
    assert m.value("personae_replies_total", {"character": "bram", "status": "completed"}) == 1
    assert m.value("personae_errors_total", {"code": "unknown_event"}) == 1
    assert m.value("personae_active_sessions") == 0
    body, content_type = m.render()
    assert b'personae_stage_seconds_count{stage="first_audio"} 1.0' in body
    assert content_type.startswith("text/plain")


async def test_drifting_out_of_character_raises_an_alert_event() -> None:
    llm = FakeLLM(
        reply=lambda req: "As an AI language model I cannot help with spreadsheets today."
    )
    service = fake_service(llm=llm, consistency_window=5)
    async with running(service) as h:
        for i in range(6):
            n = len(h.events)
            h.send(user_text(f"Wren, question {i}?"))
            h.send(p.ResponseCreate())
            await h.wait_type("response.done", after=n)
    alerts = h.of_type("npc.alert")
    assert alerts and {a.character for a in alerts} == {"wren"}
    assert len({a.signal for a in alerts}) == len(alerts)  # one alert per signal, no storm
    assert alerts[0].rolling < alerts[0].threshold


async def test_a_long_session_keeps_a_bounded_history_and_the_same_prompts(monkeypatch) -> None:
    from personae.daemon.session import session as session_module

    async def converse() -> tuple[list, int]:
        llm = FakeLLM(reply=lambda req: f"Reply {len(llm.requests)}.")
        async with running(fake_service(llm=llm, history_turns=2)) as h:
            for i in range(1, 21):
                h.send(user_text(f"Bram, question {i}?"))
                h.send(p.ResponseCreate())
                await h.wait_type("response.done", after=len(h.events))
            kept = len(h.session.history)
        return [r.messages for r in llm.requests], kept

    whole, kept_whole = await converse()
    monkeypatch.setattr(session_module, "HISTORY_SLACK", 6)
    bounded, kept = await converse()
    assert kept_whole == 40 and kept <= 2 * 2 + 6 + 1
    # forgetting changed no prompt: every reply saw the same messages
    assert len(bounded) == 20 and bounded == whole
