"""Actions, triggers and goals through a session on fakes: events, prompts, bad input."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from personae.daemon.store.models import GoalRunRow
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p


def said(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


def game_actions(h: object) -> list[p.NpcAction]:
    return [e for e in h.of_type("npc.action") if e.kind == "game"]  # type: ignore[attr-defined]


def prompt(llm: FakeLLM, n: int = -1) -> str:
    return "\n".join(m.content for m in llm.requests[n].messages)


def goal_rows(svc: object) -> int:
    with svc.database.connect() as c:  # type: ignore[attr-defined]
        return c.execute(select(func.count()).select_from(GoalRunRow)).scalar_one()


async def test_a_request_with_its_arguments_sends_the_action_and_the_reply_says_so() -> None:
    llm = FakeLLM(reply=lambda req: "Thirty coins it is. The sword is yours.")
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, I want to buy a sword for 30 coins"))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
    [action] = game_actions(h)
    assert (action.name, action.arguments) == ("sell", {"item": "sword", "price": 30})
    assert action.character == "bram" and action.response_id == done.response.id
    assert action.action_id and action.action_id.startswith("act_")
    types = [e.type for e in h.events]
    assert types.index("npc.action") < types.index("response.output_text.delta")
    assert "You sell the player the sword for 30 coins" in prompt(llm)


async def test_talk_sends_no_action() -> None:
    llm = FakeLLM(reply=lambda req: "Lights don't scare me.")
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, what do you think of the mill lights?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert game_actions(h) == []
    assert "For this reply" not in prompt(llm)


async def test_a_missing_argument_sends_nothing_and_the_character_asks() -> None:
    llm = FakeLLM(reply=lambda req: "Which one, and for how much?")
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, I want to buy a sword"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert game_actions(h) == []
    assert "has not said the price in coins. Ask them." in prompt(llm)


async def test_an_argument_outside_the_schema_is_declined() -> None:
    llm = FakeLLM(reply=lambda req: "Not for that.")
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, I want to buy a sword for 900 coins"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert game_actions(h) == []
    assert "parameter 'price' must be at most 500" in prompt(llm)


async def test_a_result_is_remembered_and_reaches_the_next_prompt() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, I want to buy a sword for 30 coins"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        [action] = game_actions(h)
        h.send(
            p.GameActionResult(
                action_id=action.action_id, status="refused", reason="the player has no coin"
            )
        )
        n = len(h.events)  # the session handles events in order: the result is in first
        h.send(said("Bram, so?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done", after=n)
        # answered once: a second result for it is an error, and nothing else changes
        m = len(h.events)
        h.send(p.GameActionResult(action_id=action.action_id, status="done"))
        err = await h.wait_type("error", after=m)
    assert "sell the player an item from the forge" in prompt(llm)
    assert "it was refused, because the player has no coin" in prompt(llm)
    assert err.error.code == "unknown_action" and err.error.event_type == "game.action_result"


async def test_a_trigger_says_its_line_with_parameters_without_the_llm() -> None:
    llm = FakeLLM(reply=lambda req: "never used")
    async with running(fake_service(llm=llm)) as h:
        h.send(
            p.GameTrigger(character="bram", trigger="customer_enters", parameters={"name": "Ayla"})
        )
        done = await h.wait_type("response.done")
    assert done.response.character == "bram"
    assert done.response.output_text == "Welcome, Ayla. Mind the sparks."
    assert h.of_type("response.output_audio.delta")
    assert llm.requests == []


async def test_an_instruction_trigger_generates_a_reply_from_it() -> None:
    llm = FakeLLM(reply=lambda req: "Fire! Get back!")
    async with running(fake_service(llm=llm)) as h:
        h.send(p.GameTrigger(character="bram", trigger="forge_fire"))
        await h.wait_type("response.done")
    assert "The forge has caught fire behind you" in prompt(llm)


async def test_an_interrupting_trigger_cuts_the_reply_in_flight() -> None:
    llm = FakeLLM(reply=lambda req: " ".join(["word"] * 40), token_delay_s=0.05)
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, tell me a long story"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_text.delta")
        h.send(p.GameTrigger(character="bram", trigger="forge_fire"))
        first = await h.wait_type("response.done")
        second = await h.wait_type("response.done", after=h.events.index(first) + 1)
    assert first.response.status == "cancelled"
    assert second.response.status == "completed"


async def test_a_queued_trigger_waits_for_the_reply_in_flight() -> None:
    llm = FakeLLM(reply=lambda req: "one two three four five six", token_delay_s=0.02)
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, hello"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_text.delta")
        h.send(
            p.GameTrigger(character="bram", trigger="customer_enters", parameters={"name": "Jo"})
        )
        first = await h.wait_type("response.done")
        second = await h.wait_type("response.done", after=h.events.index(first) + 1)
    assert first.response.status == "completed"
    assert second.response.output_text == "Welcome, Jo. Mind the sparks."


async def test_a_goal_fires_once_per_player_also_after_a_restart(tmp_path: Path) -> None:
    book = p.GameTrigger(character="mara", trigger="book_found", parameters={"title": "Ashes"})
    llm = FakeLLM(reply=lambda req: "Oh! Where did you find it?")
    async with running(fake_service(llm=llm, state_dir=tmp_path)) as h:
        h.send(book)
        await h.wait_type("response.done")
        [action] = game_actions(h)
        assert (action.name, action.arguments) == ("look_up", {"subject": "mill"})
        assert "lights on the old mill" in prompt(llm)
        n = len(h.events)
        h.send(book)
        await h.wait_type("response.done", after=n)
        assert len(game_actions(h)) == 1  # the trigger's reply again, the goal not
        assert "lights on the old mill" not in prompt(llm)
    # a new daemon on the same database
    async with running(fake_service(llm=llm, state_dir=tmp_path)) as h:
        h.send(book)
        await h.wait_type("response.done")
        assert game_actions(h) == []
    # another player gets it once too
    async with running(fake_service(llm=llm, state_dir=tmp_path)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(player_id="other")))
        h.send(book)
        await h.wait_type("response.done")
        assert len(game_actions(h)) == 1


async def test_a_goal_intent_says_its_line_once() -> None:
    llm = FakeLLM(reply=lambda req: "Hm.")
    async with running(fake_service(llm=llm)) as h:
        h.send(said("Bram, do you have any work for me?"))
        h.send(p.ResponseCreate())
        first = await h.wait_type("response.done")
        n = len(h.events)
        h.send(said("Bram, do you have any work for me?"))
        h.send(p.ResponseCreate())
        second = await h.wait_type("response.done", after=n)
    assert first.response.output_text.startswith("Work? Carry that iron")
    assert second.response.output_text == "Hm."


async def test_consent_is_refused_to_a_player_the_character_distrusts() -> None:
    llm = FakeLLM(reply=lambda req: "Nah.")
    async with running(fake_service(llm=llm)) as h:
        h.send(p.GameEvent(name="theft", characters=["wren"], data={"trust": -0.6}))
        h.send(said("Wren, take this letter to the mill"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert game_actions(h) == []
    assert "You do not trust them enough: refuse." in prompt(llm)


async def test_consent_is_given_to_a_player_in_good_standing() -> None:
    async with running(fake_service()) as h:
        h.send(said("Wren, take this letter to the mill"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    [action] = game_actions(h)
    assert action.arguments == {"destination": "mill"}


async def test_bad_triggers_get_precise_errors_and_change_nothing() -> None:
    svc = fake_service()
    async with running(svc) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(characters=["mara", "wren"])))
        await h.wait_type("session.updated")
        cases = [
            (p.GameTrigger(character="bram", trigger="customer_enters", parameters={"name": "A"}),
             "character_absent"),
            (p.GameTrigger(character="nobody", trigger="x"), "unknown_character"),
            (p.GameTrigger(character="mara", trigger="dance"), "unknown_trigger"),
            (p.GameTrigger(character="mara", trigger="book_found"), "invalid_parameters"),
            (p.GameTrigger(character="mara", trigger="book_found",
                           parameters={"title": "A", "extra": 1}), "invalid_parameters"),
            (p.GameTrigger(character="wren", trigger="letter_delivered",
                           parameters={"destination": "moon"}), "invalid_parameters"),
            (p.GameActionResult(action_id="act_nope", status="done"), "unknown_action"),
        ]  # fmt: skip
        for event, code in cases:
            n = len(h.events)
            h.send(event)
            err = await h.wait_type("error", after=n)
            assert err.error.code == code, (event, err.error.message)
            assert err.error.event_type == event.type
        # the session goes on, and none of them reached a reply or the store
        n = len(h.events)
        h.send(
            p.GameTrigger(
                character="wren", trigger="letter_delivered", parameters={"destination": "mill"}
            )
        )
        done = await h.wait_type("response.done", after=n)
    assert done.response.output_text == "Done, boss! Your letter's at the mill."
    assert len(h.of_type("response.done")) == 1
    assert goal_rows(svc) == 0


async def test_bad_frames_for_the_new_events_are_refused_at_the_edge() -> None:
    async with running(fake_service()) as h:
        h.send('{"type": "game.action_result", "action_id": "act_1", "status": "maybe"}')
        err = await h.wait_type("error")
    assert err.error.code in ("invalid_event", "malformed_frame", "invalid_request")
    assert "status" in err.error.message
