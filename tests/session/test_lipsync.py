"""npc.viseme events from a reply's timed phones, with fakes: where they go in the event
stream, that they tile the reply's audio, the session switch, and barge-in."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import numpy as np

from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.base import AudioChunk, Phone
from personae.daemon.engines.phones import words_of
from personae.daemon.session import lipsync
from personae.daemon.testing import FakeLLM, FakeSTT, FakeTTS, silence, tone
from personae.daemon.testing.harness import fake_service, running
from personae.sdk import protocol as p

LETTERS = {"c": "k", "g": "ɡ", "q": "k"}


class SpellingTTS(FakeTTS):
    """FakeTTS whose every letter is a phone (spaces and punctuation pauses), each
    `ms_per_char` long: phones with known timings, tied to words like a real engine's."""

    def synthesize(self, text: str, voice: VoiceConfig) -> Iterator[AudioChunk]:
        (chunk,) = super().synthesize(text, voice)
        ms = len(chunk.pcm) / chunk.sample_rate * 1000 / max(1, len(text))
        spans = [(m.start(), m.end()) for m in _words(text)]
        phones = []
        for i, c in enumerate(text.lower()):
            word = next((w for w, (a, b) in enumerate(spans) if a <= i < b), -1)
            symbol = LETTERS.get(c, c) if c.isalpha() and word >= 0 else " "
            phones.append(Phone(symbol, i * ms, ms, word if symbol != " " else -1))
        yield AudioChunk(chunk.pcm, chunk.sample_rate, tuple(phones))


def _words(text: str):
    from personae.daemon.engines.phones import _WORD

    return _WORD.finditer(text)


def user_text(text: str) -> p.ConversationItemCreate:
    return p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)]))


REPLY = "Leave it on the bench. Bent steel can be saved."


async def test_visemes_precede_their_audio_and_tile_the_reply() -> None:
    llm = FakeLLM(reply=lambda req: REPLY)
    async with running(fake_service(llm=llm, tts=SpellingTTS(), audio_chunk_ms=40)) as h:
        h.send(user_text("Bram, can you fix my sword?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    events = [e for e in h.events if e.type in ("npc.viseme", "response.output_audio.delta")]
    visemes = [v for e in events if e.type == "npc.viseme" for v in e.visemes]
    assert visemes
    # each npc.viseme comes right before the audio chunk its visemes and words start in
    for e, nxt in itertools.pairwise(events):
        if e.type != "npc.viseme":
            continue
        assert nxt.type == "response.output_audio.delta"
        end = nxt.offset_ms + len(nxt.delta) / 2 / 24000 * 1000
        for t in [*e.visemes, *e.words]:
            assert nxt.offset_ms <= t.start_ms < end + 1
    # one unbroken track from 0 to the end of the audio
    audio = [e for e in events if e.type == "response.output_audio.delta"]
    total = audio[-1].offset_ms + round(len(audio[-1].delta) / 2 / 24000 * 1000)
    assert visemes[0].start_ms == 0
    for a, b in itertools.pairwise(visemes):
        assert a.start_ms + a.duration_ms == b.start_ms
    assert abs(visemes[-1].start_ms + visemes[-1].duration_ms - total) <= 2
    # spelled l-e-a-v-e, then the pause before "it"
    assert [v.viseme for v in visemes[:6]] == ["nn", "E", "aa", "FF", "E", "sil"]
    words = [w for e in h.of_type("npc.viseme") for w in e.words]
    assert [w.text for w in words] == words_of(REPLY)
    assert all(w.start_ms + w.duration_ms <= total for w in words)
    assert [w.start_ms for w in words] == sorted(w.start_ms for w in words)


async def test_visemes_false_turns_them_off_and_keeps_the_audio() -> None:
    llm = FakeLLM(reply=lambda req: REPLY)
    async with running(fake_service(llm=llm, tts=SpellingTTS())) as h:
        h.send(p.SessionUpdate(session=p.SessionConfig(visemes=False)))
        await h.wait_type("session.updated")
        h.send(user_text("Bram, can you fix my sword?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert h.of_type("response.output_audio.delta")
    assert not h.of_type("npc.viseme")


async def test_an_engine_without_phones_sends_no_visemes() -> None:
    llm = FakeLLM(reply=lambda req: REPLY)
    async with running(fake_service(llm=llm)) as h:
        h.send(user_text("Bram, can you fix my sword?"))
        h.send(p.ResponseCreate())
        await h.wait_type("response.done")
    assert h.of_type("response.output_audio.delta") and not h.of_type("npc.viseme")


async def test_barge_in_sends_no_viseme_past_the_audio_sent() -> None:
    def reply(req):
        long = "long story" in req.messages[-1].content.splitlines()[-1]
        return " ".join(["The forge is hot today."] * 12) if long else "Fine."

    llm = FakeLLM(reply=reply, token_delay_s=0.02)
    stt = FakeSTT(["Bram, tell me a long story.", "Wait, stop."])
    service = fake_service(
        llm=llm, stt=stt, tts=SpellingTTS(), audio_lead_ms=200, audio_chunk_ms=40
    )
    async with running(service) as h:
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        first = await h.wait_type("response.output_audio.delta")
        rid = first.response_id
        h.send(p.InputAudioBufferAppend(audio=tone(0.6)))
        done = await h.wait_for(lambda e: e.type == "response.done" and e.response.id == rid)
        done_at = h.events.index(done)
        h.send(p.InputAudioBufferAppend(audio=silence(0.5)))
        await h.wait_for(lambda e: e.type == "response.done" and e.response.id != rid)
        await asyncio.sleep(0.2)
    assert done.response.status == "cancelled"
    mine = [e for e in h.events if e.type == "npc.viseme" and e.response_id == rid]
    assert mine, "no visemes before the barge-in"
    assert all(h.events.index(e) < done_at for e in mine)
    cut = done.response.audio_sent_ms
    story_ms = len(" ".join(["The forge is hot today."] * 12)) * 60
    assert cut < story_ms / 2  # the barge-in really cut the reply short
    starts = [t.start_ms for e in mine for t in [*e.visemes, *e.words]]
    assert max(starts) < cut


def test_events_put_each_viseme_in_the_chunk_it_starts_in() -> None:
    # 4 phones of 30 ms at offset 1000; chunks of 40 ms (960 samples at 24 kHz)
    phones = [Phone(s, i * 30.0, 30.0, 0 if s != " " else -1) for i, s in enumerate("mama")]
    out = lipsync.events(phones, "mama", offset_ms=1000, rate=24000, step=960, samples=2880,
                         response_id="r", item_id="i", character="bram")  # fmt: skip
    assert sorted(out) == [0, 1, 2]
    got = {i: [(v.viseme, v.start_ms) for v in e.visemes] for i, e in out.items()}
    assert got == {0: [("PP", 1000), ("aa", 1030)], 1: [("PP", 1060)], 2: [("aa", 1090)]}
    assert [w.text for w in out[0].words] == ["mama"] and out[0].words[0].duration_ms == 120


def test_speak_moves_each_chunks_phones_onto_the_joined_audio() -> None:
    class TwoChunks(FakeTTS):
        def synthesize(self, text, voice):
            for _ in range(2):
                pcm = np.zeros(22050 // 2, np.int16)  # 500 ms at 22.05 kHz
                yield AudioChunk(pcm, 22050, (Phone("a", 0.0, 500.0, 0),))

    speech = lipsync.speak(TwoChunks(), "a a", VoiceConfig(), 24000)
    assert len(speech.pcm) == 24000
    assert [(ph.start_ms, ph.duration_ms) for ph in speech.phones] == [(0.0, 500.0), (500.0, 500.0)]
