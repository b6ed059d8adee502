"""Actions, triggers and goals on the real embedded models, over a real socket.

A daemon of its own (greedy replies: the default cast with temperature 0 and no
repetition penalty), so a reply is the same every run and a goal's store survives the
daemon's restart.
"""

from __future__ import annotations

import json

import pytest

from personae.daemon import audio as pcm
from personae.daemon.characters import default_cast_dir, load_cast
from personae.sdk import PersonaeError, connect
from tests.speech import speak_pcm16, words

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def actions_daemon(tmp_path_factory):
    from personae.daemon.testing.launcher import Daemon

    state = tmp_path_factory.mktemp("actions-daemon")
    cast_dir = state / "cast"
    cast_dir.mkdir()
    for cid, ch in load_cast([default_cast_dir()]).items():
        greedy = ch.generation.model_copy(update={"temperature": 0.0, "repetition_penalty": 1.0})
        data = ch.model_copy(update={"generation": greedy}).model_dump(mode="json")
        (cast_dir / f"{cid}.json").write_text(json.dumps(data))
    settings = {"characters_dirs": json.dumps([str(cast_dir)]), "audio_lead_ms": 0}
    with Daemon(state_dir=state, settings=settings) as d:
        yield d


@pytest.fixture(scope="module")
def whisper(settings):
    from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT

    return FasterWhisperSTT.from_settings(settings)


async def test_a_spoken_request_sends_the_action_with_its_arguments(actions_daemon) -> None:
    question = speak_pcm16("Bram, can you repair my sword?", 16000)
    async with await connect(actions_daemon.ws, framing="msgpack") as session:
        reply = await session.speak(question)
    assert reply.transcript is not None and "sword" in words(reply.transcript)
    assert reply.character == "bram" and reply.status == "completed"
    [action] = reply.actions
    assert (action.name, action.arguments) == ("repair", {"item": "sword"})
    assert action.action_id and action.text == "repair the player's item at the anvil"
    assert reply.text and reply.audio


async def test_a_typed_sale_sends_the_action_and_the_reply_fits(actions_daemon) -> None:
    async with await connect(actions_daemon.ws) as session:
        reply = await session.say("Bram, I'll give you thirty coins for the sword.")
    [action] = reply.actions
    assert (action.name, action.arguments) == ("sell", {"item": "sword", "price": 30})
    # the prompt told Bram he sells it for 30: his words are about the sale
    assert words(reply.text) & {"sword", "30", "thirty", "coins", "coin", "price", "deal"}, (
        reply.text
    )


async def test_talk_sends_no_action(actions_daemon) -> None:
    async with await connect(actions_daemon.ws) as session:
        reply = await session.say("Bram, what do you think of the lights on the old mill?")
        assert reply.status == "completed" and reply.actions == []
        reply = await session.say("Mara, when was the mill built?")
        assert reply.character == "mara" and reply.actions == []


async def test_a_trigger_says_its_filled_line_in_the_characters_voice(
    actions_daemon, whisper
) -> None:
    async with await connect(actions_daemon.ws, framing="msgpack") as session:
        reply = await session.trigger("bram", "customer_enters", name="Ayla")
    assert reply.character == "bram" and reply.text == "Welcome, Ayla. Mind the sparks."
    heard = whisper.transcribe(
        pcm.resample(pcm.pcm16_to_float32(reply.audio), reply.sample_rate, 16000)
    ).text
    assert {"welcome", "sparks"} <= words(heard), heard


async def test_a_refused_action_changes_the_next_reply(actions_daemon) -> None:
    """The same two turns, with and without the game refusing the sale in between."""
    replies = {}
    for player, status in (("refused-player", "refused"), ("silent-player", None)):
        async with await connect(actions_daemon.ws) as session:
            await session.update(player_id=player)
            first = await session.say("Bram, I'll give you thirty coins for the sword.")
            [action] = first.actions
            if status:
                await session.action_result(action.action_id, status, "the player has no coin")
            replies[player] = await session.say("Bram, so is the sword mine now?")
    assert replies["refused-player"].text != replies["silent-player"].text, replies


async def test_bad_input_gets_precise_errors_and_the_session_goes_on(actions_daemon) -> None:
    async with await connect(actions_daemon.ws) as session:
        for kwargs, code in (
            ({"character": "bram", "trigger": "dance"}, "unknown_trigger"),
            ({"character": "bram", "trigger": "customer_enters"}, "invalid_parameters"),
        ):
            with pytest.raises(PersonaeError) as err:
                await session.trigger(**kwargs)
            assert err.value.error.code == code
        await session.update(characters=["mara"])
        with pytest.raises(PersonaeError) as err:
            await session.trigger("bram", "customer_enters", name="Jo")
        assert err.value.error.code == "character_absent"
        with pytest.raises(PersonaeError) as err:
            await session.action_result("act_unknown", "done")
            await session.wait_for("response.done", timeout=10)
        assert err.value.error.code == "unknown_action"
        reply = await session.trigger("mara", "book_found", title="Ashes of the Mill")
        assert reply.status == "completed"


async def test_a_once_goal_never_fires_twice_also_after_a_restart(actions_daemon) -> None:
    async def book() -> list:
        async with await connect(actions_daemon.ws) as session:
            await session.update(player_id="goal-player")
            reply = await session.trigger("mara", "book_found", title="River Charts")
            assert reply.status == "completed" and reply.text
            return [(a.name, a.arguments) for a in reply.actions]

    assert await book() == [("look_up", {"subject": "mill"})]
    assert await book() == []
    actions_daemon.stop()
    actions_daemon.start()
    assert await book() == []
