"""The outbox's two lanes: what a cancelled response may still send, and when it is drained."""

from __future__ import annotations

import asyncio

from personae.daemon.session.outbox import Outbox
from personae.sdk import protocol as p


def text(rid: str, word: str) -> p.OutputTextDelta:
    return p.OutputTextDelta(delta=word, response_id=rid, item_id="item_1", character="bram")


async def test_a_producer_blocked_on_a_full_lane_adds_nothing_after_its_response_is_dropped():
    sent: list[p.ServerEvent] = []
    gate = asyncio.Event()

    async def send(event: p.ServerEvent) -> None:
        await gate.wait()  # the client is not reading yet
        sent.append(event)

    box = Outbox(send, data_frames=2, lead_ms=0)
    runner = asyncio.create_task(box.run())
    for word in ("a", "b", "c"):  # the first leaves the lane and waits in send()
        await box.data(text("resp_1", word))
    blocked = asyncio.create_task(box.data(text("resp_1", "d")))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    box.drop_response("resp_1")
    await blocked
    await box.data(text("resp_2", "e"))
    gate.set()
    await asyncio.wait_for(box.drained("resp_2"), 1)
    runner.cancel()
    assert [e.delta for e in sent] == ["a", "e"]


async def test_drained_waits_for_the_responses_payload_to_leave():
    sent: list[str] = []

    async def send(event: p.ServerEvent) -> None:
        await asyncio.sleep(0.01)
        sent.append(event.delta)

    box = Outbox(send, data_frames=64, lead_ms=0)
    runner = asyncio.create_task(box.run())
    for word in "abcdef":
        await box.data(text("resp_1", word))
    await asyncio.wait_for(box.drained("resp_1"), 2)
    assert "".join(sent) in ("abcdef", "abcde")  # the last may be in flight
    assert not box.pending("resp_1")
    # a dropped response counts as drained at once
    for word in "xyz":
        await box.data(text("resp_2", word))
    waiter = asyncio.create_task(box.drained("resp_2"))
    box.drop_response("resp_2")
    await asyncio.wait_for(waiter, 1)
    runner.cancel()


async def test_playing_for_is_how_long_the_audio_sent_still_plays():
    now = [100.0]
    sent: list[p.ServerEvent] = []

    async def send(event: p.ServerEvent) -> None:
        sent.append(event)

    box = Outbox(send, data_frames=64, lead_ms=0, clock=lambda: now[0])
    box.output_sample_rate = 1000  # 2 bytes a millisecond
    runner = asyncio.create_task(box.run())
    assert box.playing_for("resp_1") == 0.0  # nothing sent
    for offset in (0, 500):  # two chunks of 500 ms, both sent at once
        await box.data(
            p.OutputAudioDelta(
                delta=bytes(1000),
                offset_ms=offset,
                response_id="resp_1",
                item_id="i",
                character="bram",
            )
        )
    await asyncio.wait_for(box.drained("resp_1"), 1)
    assert box.playing_for("resp_1") == 1.0
    now[0] += 0.25
    assert box.playing_for("resp_1") == 0.75
    now[0] += 5
    assert box.playing_for("resp_1") == 0.0
    runner.cancel()


def viseme(rid: str, start_ms: int) -> p.NpcViseme:
    return p.NpcViseme(
        visemes=[p.Viseme(viseme="aa", start_ms=start_ms, duration_ms=100)],
        response_id=rid,
        item_id="item_1",
        character="bram",
    )


def audio(rid: str, offset_ms: int) -> p.OutputAudioDelta:
    return p.OutputAudioDelta(
        delta=bytes(2 * 2400), offset_ms=offset_ms, response_id=rid, item_id="item_1",
        character="bram",
    )  # fmt: skip


async def test_a_viseme_leaves_with_its_audio_chunk_and_is_dropped_with_it():
    sent: list[p.ServerEvent] = []
    now = [0.0]

    async def send(event: p.ServerEvent) -> None:
        sent.append(event)

    # a clock we move by hand: audio may run 100 ms ahead of playback
    box = Outbox(send, data_frames=64, lead_ms=100, clock=lambda: now[0])
    box.output_sample_rate = 24000
    runner = asyncio.create_task(box.run())
    for i in range(4):
        await box.data(viseme("resp_1", i * 100))
        await box.data(audio("resp_1", i * 100))
    await asyncio.sleep(0.05)
    # t=0: chunks 0 and 1 are due (100 ms lead); chunk 2's viseme waits with its audio
    assert [e.type for e in sent] == ["npc.viseme", "response.output_audio.delta"] * 2
    box.drop_response("resp_1")  # barge-in
    now[0] = 10.0
    await box.data(text("resp_2", "x"))
    await asyncio.sleep(0.05)
    runner.cancel()
    assert [e.type for e in sent][4:] == ["response.output_text.delta"]
    # a viseme alone waits for its chunk instead of going out ahead of it
    sent.clear()
    box2 = Outbox(send, data_frames=64, lead_ms=0)
    runner2 = asyncio.create_task(box2.run())
    await box2.data(viseme("resp_3", 0))
    await asyncio.sleep(0.05)
    assert sent == []
    await box2.data(audio("resp_3", 0))
    await asyncio.sleep(0.05)
    runner2.cancel()
    assert [e.type for e in sent] == ["npc.viseme", "response.output_audio.delta"]
