"""The SDK's exchanges between characters over a real socket: `converse`, refusals."""

from __future__ import annotations

import pytest

from personae.daemon.app import create_app
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, served
from personae.sdk import connect
from personae.sdk.client import PersonaeError


async def test_converse_returns_each_line_with_its_speaker_audio_and_adapter() -> None:
    said = {"You are Bram.": "Lights? Ask Mara.", "You are Mara.": "The survey shows them."}
    llm = FakeLLM(
        reply=lambda req: next(v for k, v in said.items() if req.messages[0].content.startswith(k))
    )
    svc = fake_service(llm=llm)
    with served(create_app(svc.settings, service=svc)) as address:
        async with await connect(f"ws://{address}/v1/realtime", characters=["bram", "mara"]) as s:
            exchange = await s.converse(["mara", "bram"], "the mill lights", lines=2)
            with pytest.raises(PersonaeError) as refused:
                await s.converse(["bram"], "anything")
            reply = await s.say("And where is the mill?")
    assert exchange.reason == "finished" and exchange.speakers == ["mara", "bram"]
    assert [r.character for r in exchange.replies] == ["mara", "bram"]
    assert [r.text for r in exchange.replies] == ["The survey shows them.", "Lights? Ask Mara."]
    assert all(r.audio and r.status == "completed" for r in exchange.replies)
    assert all(
        e.character == r.character
        for r in exchange.replies
        for e in r.events
        if hasattr(e, "character")
    )
    assert exchange.done.handoff == "mara"
    assert refused.value.error.code == "exchange_too_few_characters"
    assert reply.route is not None and reply.route.reason == "handoff" and reply.character == "mara"
    svc.close()


def test_the_blocking_client_converses_too() -> None:
    from personae.sdk import SyncClient

    svc = fake_service(llm=FakeLLM(reply=lambda req: "Aye."))
    with served(create_app(svc.settings, service=svc)) as address:
        with SyncClient(f"ws://{address}/v1/realtime", characters=["mara", "wren"]) as npc:
            exchange = npc.converse(["wren", "mara"], "the rooftops", lines=3)
    assert exchange.reason == "finished" and exchange.speakers == ["wren", "mara", "wren"]
    svc.close()
