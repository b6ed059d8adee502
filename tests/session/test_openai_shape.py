"""Sessions and the OpenAI spellings, in process: dialect, rate rule, scene direction."""

from __future__ import annotations

import json

from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import openai_events as oe
from personae.sdk import protocol as p
from personae.sdk.framing import Framing
from personae.sdk.openai_shape import Dialect


def frame(event: dict) -> str:
    return json.dumps(event)


def typed(text: str) -> str:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return frame({"type": "conversation.item.create", "item": item})


async def test_personae_clients_get_no_openai_events() -> None:
    async with running(fake_service(), Framing.JSON) as h:
        h.send(typed("Hello, Bram."))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        sent = {e.type for e in h.events}
        assert "response.output_text.delta" in sent
        assert not sent & oe.OPENAI_SERVER_EVENT_TYPES
        assert not isinstance(h.session.config, p.OpenAISession)
        assert h.session.config.input_sample_rate == 16000


async def test_the_openai_shape_switches_rate_events_and_direction() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    async with running(fake_service(llm=llm), Framing.JSON) as h:
        h.send(
            frame(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "instructions": "Rain falls."},
                }
            )
        )
        updated = await h.wait_type("session.updated")
        assert isinstance(updated.session, p.OpenAISession)
        assert updated.session.input_sample_rate == 24000  # OpenAI's rate, unnamed
        assert h.session.dialect is Dialect.OPENAI
        h.send(typed("Hello, Bram."))
        h.send(frame({"type": "response.create", "response": {"instructions": "Be brief."}}))
        done = await h.wait_type("response.done")
        prompt = "\n".join(m.content for m in llm.requests[-1].messages)
        assert prompt.index("Rain falls.") < prompt.index("Be brief.")
        assert isinstance(done.response, oe.OpenAIResponse) and done.response.usage is not None
        # a rate the client names stands
        h.send(
            frame(
                {
                    "type": "session.update",
                    "session": {
                        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}
                    },
                }
            )
        )
        after = len(h.events)
        updated = await h.wait_type("session.updated", after=after)
        assert updated.session.input_sample_rate == 16000


async def test_beta_fields_switch_to_beta_names_and_voice_names_a_character() -> None:
    svc = fake_service()
    async with running(svc, Framing.JSON) as h:
        h.send(
            frame(
                {
                    "type": "session.update",
                    "session": {"voice": "mara", "modalities": ["audio", "text"]},
                }
            )
        )
        await h.wait_type("session.updated")
        assert h.session.dialect is Dialect.OPENAI_BETA
        h.send(typed("Hello, Bram."))
        h.send(frame({"type": "response.create", "response": {"character": "bram"}}))
        await h.wait_type("response.done")
        tts = svc.engines.tts["piper"]
        assert {voice for _, voice in tts.spoken} == {svc.cast["mara"].voice}


async def test_an_unhonoured_field_is_a_warning_and_an_unknown_one_an_error() -> None:
    async with running(fake_service(), Framing.JSON) as h:
        h.send(
            frame(
                {
                    "type": "session.update",
                    "session": {
                        "type": "realtime",
                        "tools": [{"type": "function"}],
                        "tool_choice": "auto",
                    },
                }
            )
        )
        warning = await h.wait_type("npc.warning")
        assert warning.param == "session.tools" and "tools" in warning.message
        assert len(h.of_type("npc.warning")) == 1  # tool_choice "auto" asks for nothing
        h.send(frame({"type": "session.update", "session": {"type": "realtime", "wings": 2}}))
        error = await h.wait_type("error")
        assert error.error.code == "invalid_event" and "session.wings" in error.error.message
        h.send(typed("Hello, Bram."))
        response = {"conversation": "none", "max_output_tokens": "inf", "metadata": {"a": "b"}}
        h.send(frame({"type": "response.create", "response": response}))
        done = await h.wait_type("response.done")
        warnings = [w.param for w in h.of_type("npc.warning")]
        assert warnings == ["session.tools", "response.conversation"]
        assert done.response.status == "completed" and done.response.metadata == {"a": "b"}


async def test_an_openai_voice_is_shown_as_not_in_effect() -> None:
    async with running(fake_service(), Framing.JSON) as h:
        audio = {"output": {"voice": "alloy"}}
        h.send(frame({"type": "session.update", "session": {"type": "realtime", "audio": audio}}))
        updated = await h.wait_type("session.updated")
        assert updated.session.voice is None
        warning = await h.wait_type("npc.warning")
        assert warning.param == "session.voice" and "alloy" in warning.message


async def test_an_openai_assistant_item_is_the_pinned_characters_line() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    async with running(fake_service(llm=llm), Framing.JSON) as h:
        h.send(frame({"type": "session.update", "session": {"type": "realtime", "model": "wren"}}))
        await h.wait_type("session.updated")
        line = {"type": "text", "text": "The mill burned down last spring."}
        item = {"type": "message", "role": "assistant", "content": [line]}
        h.send(frame({"type": "conversation.item.create", "item": item}))
        created = await h.wait_type("conversation.item.created")
        assert created.item.character == "wren"
        h.send(typed("What happened to the mill?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
        said = [m for m in llm.requests[-1].messages if m.role == "assistant"]
        assert "The mill burned down last spring." in said[-1].content
