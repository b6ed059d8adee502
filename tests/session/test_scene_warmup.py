"""Every character of the scene warm: at the session's start and at each scene change
each present character's prompt is prefilled in the background, never beside a reply."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field

from personae.daemon.engines.base import GenerationRequest
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import Harness, fake_service, running
from personae.sdk import protocol as p


def user_text(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


def who(request: GenerationRequest) -> str:
    """The character a prompt is for, from its system prompt ("You are Bram. ...")."""
    m = re.match(r"You are (\w+)", request.messages[0].content)
    assert m, request.messages[0].content[:80]
    return m.group(1).lower()


@dataclass
class WatchedLLM(FakeLLM):
    """A fake LLM that notes, at each prime, whether a reply was being generated."""

    generating: threading.Event = field(default_factory=threading.Event)
    primed_while_generating: list[bool] = field(default_factory=list)

    def prime(self, request: GenerationRequest) -> None:
        self.primed_while_generating.append(self.generating.is_set())
        super().prime(request)

    def generate(self, request, cancel):
        self.generating.set()
        try:
            yield from super().generate(request, cancel)
        finally:
            self.generating.clear()


async def primes(llm: FakeLLM, n: int) -> list[str]:
    async with asyncio.timeout(5):
        while len(llm.primed) < n:  # noqa: ASYNC110 - primes run on a thread
            await asyncio.sleep(0.01)
    return [who(r) for r in llm.primed]


async def settle(h: Harness) -> None:
    await asyncio.sleep(0.4)  # past the warm-up's start delay and its prefills


async def test_a_new_session_and_a_scene_change_warm_each_present_character() -> None:
    llm = FakeLLM()
    async with running(fake_service(llm=llm, llm_warm_scene_max=4)) as h:
        assert sorted(await primes(llm, 3)) == ["bram", "mara", "wren"]  # the whole cast
        await settle(h)
        assert len(llm.primed) == 3
        h.send(p.SessionUpdate(session=p.SessionConfig(characters=["mara", "wren"])))
        assert sorted((await primes(llm, 5))[3:]) == ["mara", "wren"]
        await settle(h)
        assert len(llm.primed) == 5  # Bram left the scene: not warmed again
        # each prompt is the character's own, as far as known before the player speaks
        assert all(r.messages[-1].role != "user" for r in llm.primed)


async def test_a_scene_larger_than_the_bound_warms_the_most_recently_heard_first() -> None:
    llm = FakeLLM(reply=lambda req: "Aye.")
    service = fake_service(llm=llm, llm_warm_scene_max=2, llm_prime_history=False)
    async with running(service) as h:
        await primes(llm, 2)
        await settle(h)
        h.send(user_text("Wren, hello."))
        h.send(p.ResponseCreate())
        done = await h.wait_type("response.done")
        assert done.response.character == "wren"
        before = len(llm.primed)
        h.send(p.SessionUpdate(session=p.SessionConfig(characters=["bram", "mara", "wren"])))
        await primes(llm, before + 2)
        await settle(h)
        warmed = [who(r) for r in llm.primed[before:]]
    assert warmed[0] == "wren" and len(warmed) == 2  # at most two, Wren who spoke first


async def test_the_warm_up_waits_for_a_reply_being_made() -> None:
    words = " ".join(["Hammer"] * 30) + "."
    llm = WatchedLLM(reply=lambda req: words, token_delay_s=0.03)  # a reply of ~1 s
    service = fake_service(llm=llm, llm_warm_scene_max=4, llm_prime_history=False)
    async with running(service) as h:
        await primes(llm, 3)  # the start's warm-up
        await settle(h)
        h.send(user_text("Bram, tell me about the forge."))
        h.send(p.ResponseCreate())
        await h.wait_type("response.output_text.delta")
        # the scene changes while Bram is answering
        h.send(p.SessionUpdate(session=p.SessionConfig(characters=["bram", "mara"])))
        await asyncio.sleep(0.4)  # the warm-up would have started by now
        during = len(llm.primed)
        done = await h.wait_type("response.done")
        await primes(llm, 5)
    assert done.response.status == "completed"
    assert during == 3  # nothing was prefilled while the reply was being made
    assert llm.primed_while_generating == [False] * 5


async def test_switched_off_nothing_is_warmed() -> None:
    llm = FakeLLM()
    async with running(fake_service(llm=llm, llm_warm_scene_max=0)) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(characters=["mara"])))
        await h.wait_type("session.updated")
        await settle(h)
    assert llm.primed == []
