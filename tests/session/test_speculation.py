"""The reply started at the player's pause: kept when the turn ends there with the same
words, dropped with nothing of it sent when the player goes on, cancelled by a drop or
the session's end. Scripted fakes; the real engines are in tests/e2e/test_speculation.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.monitoring import Metrics
from personae.daemon.session.speculation import Speculation, normalised, same_prompt
from personae.daemon.testing import FakeLLM, FakeSTT, silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p

PARAMS = GenerationParams()


def request(line: str, system: str = "You are Bram.") -> GenerationRequest:
    return GenerationRequest(
        messages=[ChatMessage("system", system), ChatMessage("user", line)], params=PARAMS
    )


def counted(metrics: Metrics, outcome: str, reason: str = "") -> float:
    value = metrics.value(
        "personae_speculative_replies_total", {"outcome": outcome, "reason": reason}
    )
    return value or 0.0


class Scripted:
    """A generation of `words`, each released by the test (or all at once)."""

    def __init__(self, words: list[str], *, hold: bool = False) -> None:
        self.words = words
        self.requests: list[GenerationRequest] = []
        self.released = asyncio.Semaphore(0 if hold else 1000)
        self.closed = asyncio.Event()

    async def __call__(self, req: GenerationRequest) -> AsyncIterator[str]:
        self.requests.append(req)
        try:
            for word in self.words:
                await self.released.acquire()
                yield word
        finally:
            self.closed.set()


def speculation(gen: Scripted, *, idle: bool = True) -> tuple[Speculation, list[str], Metrics]:
    prepared: list[str] = []
    released: list[str] = []
    metrics = Metrics()

    async def prepare(text: str):
        prepared.append(text)
        return request(text), lambda: released.append(text)

    spec = Speculation(
        enabled=True, prepare=prepare, generate=gen, idle=lambda: idle, metrics=metrics
    )
    spec.released = released  # type: ignore[attr-defined]
    return spec, prepared, metrics


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [d async for d in stream]


def test_transcripts_match_by_words_not_case_or_punctuation() -> None:
    assert normalised("Bram, where's the MILL?") == normalised("bram where's the mill")
    assert same_prompt(request("Bram, where's the mill?"), request("bram where's the mill"))
    assert not same_prompt(request("Bram, where's the mill?"), request("Bram, where's the mine?"))
    # only the player's lines are compared by words: a changed system prompt is another prompt
    assert not same_prompt(request("hi", "You are Bram."), request("hi", "You are bram"))


async def test_a_kept_speculation_hands_over_its_buffer_and_the_rest_of_one_generation() -> None:
    gen = Scripted(["Aye, ", "the ", "mill ", "is ", "north."], hold=True)
    spec, prepared, metrics = speculation(gen)
    spec.heard("Bram, where is the mill?")
    spec.heard("bram where is the mill")  # the same words again: the guess goes on
    gen.released.release()
    gen.released.release()
    await settle()
    stream = spec.take(request("Bram, where is the mill."))  # re-decoded: punctuation differs
    assert stream is not None
    for _ in range(3):
        gen.released.release()
    assert await collect(stream) == gen.words
    assert prepared == ["Bram, where is the mill?"] and len(gen.requests) == 1
    assert counted(metrics, "kept") == 1 and spec.text is None
    assert spec.released == ["Bram, where is the mill?"]  # type: ignore[attr-defined]


async def test_a_guess_still_preparing_is_waited_for_and_kept_or_replaced() -> None:
    for line, kept in (("Bram, where is the mill?", True), ("Bram, and the well?", False)):
        gen = Scripted(["Aye."])
        go = asyncio.Event()
        metrics = Metrics()

        async def prepare(text: str, go=go):
            await go.wait()  # routing and the prompt take a while
            return request(text), lambda: None

        spec = Speculation(
            enabled=True, prepare=prepare, generate=gen, idle=lambda: True, metrics=metrics
        )
        spec.heard("Bram, where is the mill?")
        await settle()
        stream = spec.take(request(line))
        assert stream is not None
        go.set()
        assert await collect(stream) == ["Aye."]
        # kept: one generation, the guess's; replaced: the reply's own prompt generated
        assert [r.messages[-1].content for r in gen.requests][-1] == line
        assert counted(metrics, "kept") == kept
        assert counted(metrics, "dropped", "mismatch") == (not kept)
        await spec.close()


async def test_a_guess_for_another_prompt_is_dropped_before_the_reply_generates() -> None:
    gen = Scripted(["Aye."], hold=True)
    spec, _, metrics = speculation(gen)
    spec.heard("Bram, where is the mill?")
    await settle()
    assert spec.take(request("Bram, where is the mill and the well?")) is None
    await asyncio.wait_for(gen.closed.wait(), 2)  # its generation stopped
    assert counted(metrics, "dropped", "mismatch") == 1 and counted(metrics, "kept") == 0
    await spec.close()


async def test_dropping_stops_the_generation_and_counts_what_it_cost() -> None:
    gen = Scripted(["Aye, ", "the ", "mill."], hold=True)
    spec, _, metrics = speculation(gen)
    spec.heard("Bram, where is the mill?")
    gen.released.release()
    await settle()
    spec.drop("cancelled")  # a barge-in or response.cancel
    await asyncio.wait_for(gen.closed.wait(), 2)
    assert spec.take(request("Bram, where is the mill?")) is None
    assert counted(metrics, "dropped", "cancelled") == 1
    assert metrics.value("personae_speculation_dropped_tokens_total") == 1
    await spec.close()


async def test_closing_cancels_a_guess_in_flight() -> None:
    gen = Scripted(["Aye."], hold=True)
    spec, _, metrics = speculation(gen)
    spec.heard("Bram?")
    await settle()
    await spec.close()
    assert gen.closed.is_set() and counted(metrics, "dropped", "closed") == 1
    assert spec.released == ["Bram?"]  # type: ignore[attr-defined]


async def test_no_speculation_while_the_session_is_busy_or_when_off() -> None:
    gen = Scripted(["Aye."])
    spec, prepared, _ = speculation(gen, idle=False)
    spec.heard("Bram?")
    await settle()
    assert prepared == [] and spec.take(request("Bram?")) is None
    spec, prepared, _ = speculation(gen)
    spec.enabled = False
    spec.heard("Bram?")
    await settle()
    assert prepared == []


# --- in the session, on fake engines ---


def said_back(req: GenerationRequest) -> str:
    return f"You said {req.messages[-1].content.split(':')[-1].strip()} indeed."


async def paced(h, audio, *, step_s: float = 0.04) -> None:
    """Audio as a client streams it: in real time, so pauses are heard as they come."""
    n = int(16000 * step_s)
    for i in range(0, len(audio) // 2, n):
        h.send(p.InputAudioBufferAppend(audio=audio[2 * i : 2 * (i + n)]))
        await asyncio.sleep(step_s)


def heard_seconds(audio) -> str:
    return f"Bram, {len(audio) / 16000:.1f} seconds"


async def test_the_turn_ending_at_the_pause_keeps_the_reply_begun_there() -> None:
    llm = FakeLLM(reply=said_back)
    stt = FakeSTT(text_for=heard_seconds)
    service = fake_service(
        llm=llm, stt=stt, vad_prefix_ms=0, vad_silence_ms=700, speculative_reply=True
    )
    async with running(service) as h:
        await paced(h, tone(1.0) + silence(1.0))
        done = await h.wait_type("response.done")
    assert done.response.status == "completed"
    assert len(llm.requests) == 1, "the reply is the speculation's generation"
    assert counted(service.metrics, "kept") == 1
    assert "1.0 seconds" in done.response.output_text


async def test_the_player_going_on_drops_the_guess_and_nothing_of_it_is_sent() -> None:
    llm = FakeLLM(reply=said_back)
    stt = FakeSTT(text_for=heard_seconds)
    service = fake_service(
        llm=llm, stt=stt, vad_prefix_ms=0, vad_silence_ms=700, speculative_reply=True
    )
    async with running(service) as h:
        await paced(h, tone(1.0) + silence(0.4) + tone(1.0) + silence(1.0))
        done = await h.wait_type("response.done")
    guessed = [r for r in llm.requests if "1.0 seconds" in r.messages[-1].content]
    assert guessed, "a guess was made at the pause"
    assert counted(service.metrics, "dropped", "went_on") >= 1
    # the guess made at the pause that did end the turn is the one kept
    assert counted(service.metrics, "kept") == 1
    replies = [e for e in h.events if e.type.startswith(("response.", "npc."))]
    sent = " ".join(str(e.model_dump()) for e in replies)
    assert "1.0 seconds" not in sent  # neither its text nor anything else of it went out
    assert float(done.response.output_text.split()[3]) >= 2.1


# --- the preparer, on the state a session hands it ---


async def test_the_preparer_routes_with_the_handoff_and_consumes_nothing() -> None:
    from personae.daemon.session.prompt import Turn
    from personae.daemon.session.speculation import reply_preparer

    llm = FakeLLM()
    service = fake_service(llm=llm)
    history = [Turn("player", "Who mends the nets?"), Turn("bram", "Ask Mara.")]
    scene = ["bram", "mara"]
    session = p.Session(id="sess_test", characters=scene)
    prepare = reply_preparer(
        service,
        scene=lambda: scene,
        config=lambda: session,
        history=history,
        player_id=lambda: "p1",
        last_speaker=lambda: "bram",
        handoff=lambda: "mara",
    )
    prepared = await prepare("What now?")
    assert prepared is not None
    req, release = prepared
    release()
    # the handoff beat the last speaker: Mara's prompt, ending on the early text
    assert "Mara" in req.messages[0].content and "Bram" not in req.messages[0].content
    assert req.messages[-1].content.endswith("What now?")
    assert len(history) == 2 and llm.requests == []  # nothing remembered, nothing generated
    scene.clear()
    assert await prepare("Anyone?") is None  # no character in the scene: no guess
