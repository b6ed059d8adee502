"""Scenes where characters talk to each other (`npc.converse`), on scripted fakes."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import text as sql

from personae.daemon.engines.base import GenerationRequest
from personae.daemon.session.exchange import next_speaker
from personae.daemon.session.prompt import system_text
from personae.daemon.testing import FakeLLM, FakeSTT, FakeTTS, silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p
from personae.sdk.framing import Framing

NAMES = {"You are Bram.": "bram", "You are Mara.": "mara", "You are Wren.": "wren"}


def speaker(req: GenerationRequest) -> str:
    system = req.messages[0].content
    return next(cid for start, cid in NAMES.items() if system.startswith(start))


def user_text(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


def converse(*characters: str, topic: str = "the lights on the old mill", lines: int = 4):
    return p.NpcConverse(characters=list(characters), topic=topic, lines=lines)


def scene(*characters: str) -> p.SessionUpdate:
    return p.SessionUpdate(session=p.SessionConfig(characters=list(characters)))


def lines_of(h) -> list[list[p.ServerEvent]]:
    """The events of each response, in the order they were sent."""
    out: dict[str, list[p.ServerEvent]] = {}
    for e in h.events:
        rid = getattr(e, "response_id", None) or (
            e.response.id if e.type in ("response.created", "response.done") else None
        )
        if rid is not None and e.type != "npc.exchange.line":
            out.setdefault(rid, []).append(e)
    return list(out.values())


def test_next_speaker_alternates_follows_names_and_never_repeats() -> None:
    two = ["bram", "mara"]
    assert next_speaker(two, [], None) == "bram"
    assert next_speaker(two, ["bram"], None) == "mara"
    assert next_speaker(two, ["bram", "mara"], None) == "bram"
    assert next_speaker(two, ["bram"], "bram") == "mara"  # not twice in a row
    three = ["bram", "mara", "wren"]
    assert next_speaker(three, ["bram"], None) == "mara"
    assert next_speaker(three, ["bram"], "wren") == "wren"  # addressed by name
    assert next_speaker(three, ["bram", "wren"], None) == "mara"  # waited longest
    assert next_speaker(three, ["bram", "mara", "wren"], None) == "bram"
    assert next_speaker(three, ["bram", "mara"], "nobody") == "wren"
    # a line clearly about a listener's trade goes to them, else the turn order holds
    about_wren = {"mara": 0.05, "wren": 0.4}
    assert next_speaker(three, ["bram"], None, about_wren) == "wren"
    assert next_speaker(three, ["bram"], None, {"mara": 0.3, "wren": 0.35}) == "mara"
    assert next_speaker(three, ["bram"], None, {"mara": 0.0, "wren": 0.2}) == "mara"
    assert next_speaker(three, ["bram"], "mara", about_wren) == "mara"  # a name wins


async def test_two_characters_alternate_and_each_line_streams_whole_in_order() -> None:
    llm = FakeLLM(reply=lambda req: f"Line by {speaker(req)}. It is late.")
    tts = FakeTTS()
    async with running(fake_service(llm=llm, tts=tts)) as h:
        h.send(scene("bram", "mara", "wren"))
        h.send(converse("bram", "mara"))
        done = await h.wait_type("npc.exchange.done")
    started = h.of_type("npc.exchange.started")[0]
    assert started.characters == ["bram", "mara"] and started.lines == 4
    assert started.topic == "the lights on the old mill"
    assert done.exchange_id == started.exchange_id
    assert done.reason == "finished" and done.lines_spoken == 4 and done.handoff is None
    responses = lines_of(h)
    speakers = [r[0].response.character for r in responses]
    assert speakers == ["bram", "mara", "bram", "mara"]
    for events in responses:
        types = [e.type for e in events]
        assert types[0] == "response.created" and types[-1] == "response.done"
        assert "response.output_audio.delta" in types and "npc.sentence" in types
        who = events[0].response.character
        assert all(getattr(e, "character", who) == who for e in events)
        assert events[-1].response.status == "completed"
    # one line after the other: each response is over before the next one starts
    index = {id(e): i for i, e in enumerate(h.events)}
    for before, after in itertools.pairwise(responses):
        assert index[id(before[-1])] < index[id(after[0])]
    # npc.exchange.line follows each line's response.done
    line_events = h.of_type("npc.exchange.line")
    assert [e.index for e in line_events] == [0, 1, 2, 3]
    assert [e.character for e in line_events] == speakers
    assert [e.response_id for e in line_events] == [r[0].response.id for r in responses]
    assert all(e.status == "completed" and e.text.startswith("Line by") for e in line_events)
    for line, events in zip(line_events, responses, strict=True):
        assert index[id(events[-1])] < h.events.index(line)
    assert h.events.index(started) < index[id(responses[0][0])]
    # each line in its own voice, and prompted with the topic and what was said
    pitches = [voice.pitch for _, voice in tts.spoken]
    assert pitches[0] < pitches[2] and pitches[4] < pitches[2]  # bram 0.9, mara 1.22
    assert [speaker(r) for r in llm.requests] == speakers
    assert all("the lights on the old mill" in system_text(r.messages) for r in llm.requests)
    second = llm.requests[1].messages
    assert "(Bram says) Line by bram." in "\n".join(m.content for m in second)
    assert "Bram" in system_text(llm.requests[1].messages)  # Mara knows whom she talks to
    # the session's history holds every line, for later replies
    assert [t.speaker for t in h.session.history] == speakers


async def test_the_character_a_line_names_speaks_next() -> None:
    said = iter(["Wren, you saw them first.", "Aye, boss, green ones.", "How odd."])
    llm = FakeLLM(reply=lambda req: next(said))
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara", "wren", lines=3))
        await h.wait_type("npc.exchange.done")
    assert [e.character for e in h.of_type("npc.exchange.line")] == ["bram", "wren", "mara"]


async def test_with_three_the_one_a_line_is_about_speaks_next() -> None:
    said = iter(
        [
            "Who runs messages across the rooftops of the market and hears every rumour?",
            "Me, boss.",
            "Hm.",
        ]
    )
    llm = FakeLLM(reply=lambda req: next(said))
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara", "wren", lines=3))
        await h.wait_type("npc.exchange.done")
    # Mara's turn came next, but the line was about the courier
    assert [e.character for e in h.of_type("npc.exchange.line")] == ["bram", "wren", "mara"]


async def test_barge_in_stops_the_exchange_and_the_player_is_answered() -> None:
    def reply(req: GenerationRequest) -> str:
        if "Stop a moment" in req.messages[-1].content:
            return "Yes?"
        if speaker(req) == "bram":
            return "Green lights, aye."
        return " ".join(["The mill lights burn green tonight."] * 6)

    llm = FakeLLM(reply=reply, token_delay_s=0.01)
    stt = FakeSTT(["Stop a moment, what lights?"])
    service = fake_service(llm=llm, stt=stt, audio_lead_ms=200, audio_chunk_ms=40)
    async with running(service) as h:
        h.send(converse("bram", "mara", lines=6))
        # talk over the second line
        await h.wait_for(
            lambda e: e.type == "response.output_audio.delta" and e.character == "mara"
        )
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        done = await h.wait_type("npc.exchange.done")
        answer = await h.wait_for(
            lambda e: e.type == "response.done" and e.response.output_text == "Yes?"
        )
    assert done.reason == "interrupted" and done.lines_spoken == 2
    lines = h.of_type("npc.exchange.line")
    assert [(e.character, e.status) for e in lines] == [
        ("bram", "completed"),
        ("mara", "cancelled"),
    ]
    cut = lines[1]
    assert cut.text and len(cut.text) < len(reply(llm.requests[1]))  # only what was heard
    assert answer.response.status == "completed"
    # no line was generated after the barge-in: the exchange's two, then the answer
    assert len(llm.requests) == 3 and llm.requests[-1].messages[-1].content.endswith("lights?")
    assert h.events.index(done) < h.events.index(answer)
    # the player's line went to the last speaker, who was cut
    assert h.of_type("npc.route")[-1].character == "mara"


async def test_a_typed_line_stops_the_exchange_and_is_answered() -> None:
    llm = FakeLLM(reply=lambda req: "A long and winding tale of the mill. " * 4, token_delay_s=0.01)
    service = fake_service(llm=llm, audio_lead_ms=200, audio_chunk_ms=40)
    async with running(service) as h:
        h.send(converse("bram", "mara", lines=5))
        await h.wait_type("response.output_audio.delta")
        h.send(user_text("Bram, enough of that. Any news?"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("npc.exchange.done")
        await h.wait_for(lambda e: e.type == "response.done" and e.response.status == "completed")
    assert done.reason == "interrupted" and done.lines_spoken == 1
    first = h.of_type("response.done")[0].response
    assert first.status == "cancelled" and first.status_reason == "player_joined"
    assert len(llm.requests) == 2 and h.of_type("npc.route")[-1].character == "bram"


async def test_response_cancel_ends_the_exchange() -> None:
    llm = FakeLLM(reply=lambda req: "Words and more words. " * 8, token_delay_s=0.01)
    async with running(fake_service(llm=llm, audio_lead_ms=200, audio_chunk_ms=40)) as h:
        h.send(converse("mara", "wren"))
        await h.wait_type("response.output_audio.delta")
        h.send(p.ResponseCancel())
        done = await h.wait_type("npc.exchange.done")
    assert done.reason == "interrupted" and len(llm.requests) == 1


async def test_a_failed_line_ends_the_exchange_with_error() -> None:
    llm = FakeLLM(reply=lambda req: "One two three four five.", fail_after=2)
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara"))
        done = await h.wait_type("npc.exchange.done")
        err = await h.wait_type("error")
        h.send(user_text("Bram, are you well?"))
        h.send(p.ResponseCreate())
    assert done.reason == "error" and len(llm.requests) == 1
    assert err.error.type == "server_error"
    assert h.of_type("npc.exchange.line")[0].status == "failed"


async def test_listeners_remember_what_they_heard_in_a_later_session() -> None:
    said = iter(["The mill lights are lanterns of smugglers.", "Then I will map their path."])
    llm = FakeLLM(reply=lambda req: next(said, "Hm."))
    service = fake_service(llm=llm)
    async with running(service) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(player_id="p-7")))
        h.send(converse("bram", "mara", lines=2))
        await h.wait_type("npc.exchange.done")
    mara = [m.text for m in service.runtime.memory.recent("mara", "p-7")]
    assert "Bram said: The mill lights are lanterns of smugglers." in mara
    wren = [m.text for m in service.runtime.memory.recent("wren", "p-7")]
    assert "Mara said: Then I will map their path." in wren  # present, listening
    bram = [m.text for m in service.runtime.memory.recent("bram", "p-7")]
    assert bram == ["Mara said: Then I will map their path."]  # not its own line
    async with running(service) as h:  # a new session: the history is gone, memory is not
        h.send(p.SessionUpdate(session=p.SessionConfig(player_id="p-7")))
        h.send(user_text("Mara, what did Bram say about the mill lights?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    system = system_text(llm.requests[-1].messages)
    assert json.dumps("Bram said: The mill lights are lanterns of smugglers.") in system


async def test_a_listener_named_in_the_last_line_takes_the_next_unnamed_question() -> None:
    said = iter(["Maps are not my trade. Ask Mara."])
    llm = FakeLLM(reply=lambda req: next(said, "Aye."))
    async with running(fake_service(llm=llm)) as h:
        h.send(scene("bram", "mara"))
        h.send(converse("bram", "mara", topic="a map of the river", lines=1))
        done = await h.wait_type("npc.exchange.done")
        assert done.handoff == "mara"
        # about the forge, and Bram spoke last: without the hand-off it would be his
        n = len(h.events)
        h.send(user_text("And what about the forge and the iron and the anvil?"))
        h.send(p.ResponseCreate())
        route = await h.wait_type("npc.route", after=n)
        await h.wait_type("response.done", after=n)
        n = len(h.events)
        h.send(user_text("And what about the forge and the iron and the anvil?"))
        h.send(p.ResponseCreate())
        again = await h.wait_type("npc.route", after=n)
    assert route.character == "mara" and route.reason == "handoff"
    assert again.reason != "handoff"  # the hand-off is for one line only


async def test_a_name_in_the_players_line_beats_the_handoff() -> None:
    llm = FakeLLM(reply=lambda req: "Ask Mara.")
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara", lines=1))
        await h.wait_type("npc.exchange.done")
        h.send(user_text("Wren, what do you think?"))
        h.send(p.ResponseCreate())
        route = await h.wait_type("npc.route")
    assert route.character == "wren" and route.reason == "addressed"


BAD = [
    ({"characters": ["bram"], "topic": "x"}, "exchange_too_few_characters"),
    ({"characters": ["bram", "bram"], "topic": "x"}, "exchange_too_few_characters"),
    ({"characters": ["bram", "ghost"], "topic": "x"}, "unknown_character"),
    ({"characters": ["bram", "wren"], "topic": "x"}, "character_not_present"),
    ({"characters": ["bram", "mara"], "topic": "x", "lines": 0}, "exchange_lines_out_of_range"),
    ({"characters": ["bram", "mara"], "topic": "x", "lines": 100}, "exchange_lines_out_of_range"),
    ({"characters": ["bram", "mara"], "topic": "  \n "}, "exchange_topic_empty"),
    ({"characters": ["bram", "mara"], "topic": "x", "lines": "many"}, "invalid_event"),
    ({"characters": ["bram", "mara"]}, "invalid_event"),
    ({"characters": ["bram", "mara"], "topic": "x" * 1001}, "invalid_event"),
]


@pytest.mark.parametrize(("fields", "code"), BAD)
async def test_bad_exchanges_get_a_precise_error_and_nothing_is_written(fields, code) -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    service = fake_service(llm=llm)
    async with running(service, Framing.JSON) as h:
        h.send(scene("bram", "mara"))
        h.send(json.dumps({"type": "npc.converse", "event_id": "ev1", **fields}))
        err = await h.wait_type("error")
        assert err.error.code == code, err.error.message
        assert err.error.event_type == "npc.converse" and err.error.event_id == "ev1"
        assert err.error.type == "invalid_request_error"
        # the session goes on
        h.send(user_text("Bram, still there?"))
        h.send(p.ResponseCreate())
        assert (await h.wait_type("response.done")).response.status == "completed"
    assert not h.of_type("npc.exchange.started")
    assert len(llm.requests) == 1
    with service.database.connect() as db:
        memories = db.execute(sql("select count(*) from memories")).scalar()
        turns = db.execute(sql("select text from turns")).scalars().all()
    assert memories == 0 and set(turns) == {"Bram, still there?", "Aye."}


async def test_an_exchange_while_another_runs_is_refused_and_the_first_goes_on() -> None:
    llm = FakeLLM(reply=lambda req: "Slowly, slowly.", token_delay_s=0.02)
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara", lines=2))
        h.send(converse("mara", "wren", lines=2))
        err = await h.wait_type("error")
        done = await h.wait_type("npc.exchange.done")
        assert err.error.code == "exchange_in_progress"
        # once it is over, another may start
        h.send(converse("mara", "wren", lines=1))
        second = await h.wait_for(lambda e: e.type == "npc.exchange.done" and e is not done)
    assert done.reason == "finished" and done.lines_spoken == 2
    assert second.reason == "finished"
    assert len(h.of_type("npc.exchange.started")) == 2


async def test_the_bound_on_lines_is_a_setting() -> None:
    async with running(fake_service(exchange_max_lines=3)) as h:
        h.send(converse("bram", "mara", lines=4))
        err = await h.wait_type("error")
    assert err.error.code == "exchange_lines_out_of_range" and "1 to 3" in err.error.message


async def test_a_failed_memory_write_ends_the_exchange_with_error_and_the_session_goes_on() -> None:
    from personae.daemon.errors import EngineError

    service = fake_service(llm=FakeLLM(reply=lambda req: "Aye."))

    async def broken(*args, **kwargs) -> None:
        raise EngineError("the store is gone", engine="store", retryable=True)

    service.conversation.overheard = broken  # type: ignore[method-assign]
    async with running(service) as h:
        h.send(converse("bram", "mara"))
        done = await h.wait_type("npc.exchange.done")
        err = await h.wait_type("error")
        h.send(user_text("Bram, still there?"))
        h.send(p.ResponseCreate())
        n = len(h.events)
        reply = await h.wait_type("response.done", after=n)
        h.send(converse("bram", "mara", lines=1))  # the exchange is over: another may start
        await h.wait_for(lambda e: e.type == "npc.exchange.done" and e is not done)
    assert done.reason == "error" and done.lines_spoken == 1
    assert err.error.code == "engine_error" and err.error.retryable
    assert reply.response.status == "completed"


async def test_a_waiting_response_create_lets_the_line_finish_then_ends_the_exchange() -> None:
    llm = FakeLLM(reply=lambda req: f"Line by {speaker(req)}.", token_delay_s=0.02)
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara", lines=4))
        await h.wait_type("response.created")
        h.send(p.ResponseCreate(response=p.ResponseOptions(character="wren")))
        done = await h.wait_type("npc.exchange.done")
        answer = await h.wait_for(
            lambda e: e.type == "response.done" and e.response.character == "wren"
        )
    assert done.reason == "interrupted" and done.lines_spoken == 1
    assert h.of_type("npc.exchange.line")[0].status == "completed"  # not cut
    assert answer.response.status == "completed" and len(llm.requests) == 2


async def test_an_exchange_ends_when_the_scene_loses_a_participant() -> None:
    llm = FakeLLM(reply=lambda req: "Hm, the lights.", token_delay_s=0.02)
    async with running(fake_service(llm=llm)) as h:
        h.send(converse("bram", "mara", lines=4))
        await h.wait_type("response.created")
        h.send(scene("bram", "wren"))  # Mara walks off
        done = await h.wait_type("npc.exchange.done")
    assert done.reason == "interrupted" and done.lines_spoken == 1
    assert [e.character for e in h.of_type("npc.exchange.line")] == ["bram"]


async def test_barge_in_before_a_queued_exchange_starts_ends_it_without_a_line() -> None:
    def reply(req: GenerationRequest) -> str:
        return "Yes?" if "Hold on" in req.messages[-1].content else "A long tale. " * 20

    llm = FakeLLM(reply=reply, token_delay_s=0.01)
    stt = FakeSTT(["Hold on."])
    service = fake_service(llm=llm, stt=stt, audio_lead_ms=200, audio_chunk_ms=40)
    async with running(service) as h:
        h.send(user_text("Bram, tell me everything."))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_audio.delta")
        h.send(converse("bram", "mara"))  # queued behind Bram's reply
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        done = await h.wait_type("npc.exchange.done")
        await h.wait_for(lambda e: e.type == "response.done" and e.response.output_text == "Yes?")
    assert done.reason == "interrupted" and done.lines_spoken == 0
    assert not h.of_type("npc.exchange.line") and len(llm.requests) == 2


async def test_a_topic_moderation_refuses_is_refused_before_anything_runs() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    async with running(fake_service(llm=llm, moderation_words=("frobnicate",))) as h:
        h.send(converse("bram", "mara", topic="how to frobnicate the miller"))
        err = await h.wait_type("error")
    assert err.error.code == "content_blocked" and err.error.event_type == "npc.converse"
    assert "frobnicate" not in err.error.message
    assert not h.of_type("npc.exchange.started") and llm.requests == []
