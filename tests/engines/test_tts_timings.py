"""Phoneme timings from the real Piper and espeak-ng engines: they cover what the
engines say, tile the audio, and every phoneme they emit has a viseme."""

from __future__ import annotations

import itertools
import os
import signal
import tomllib
from pathlib import Path

import pytest

from personae.daemon.characters import VoiceConfig
from personae.daemon.engines.base import AudioChunk
from personae.daemon.engines.phones import is_pause, word_spans, words_of
from personae.daemon.engines.tts_espeak import EspeakTTS
from personae.daemon.engines.tts_piper import PiperTTS
from personae.daemon.engines.visemes import TABLE, viseme_of
from personae.daemon.errors import EngineError

pytestmark = pytest.mark.models

CAST = Path(__file__).resolve().parents[2] / "daemon" / "cast"


def corpus() -> list[str]:
    """Every line of the default cast, plus numbers, names, loanwords and shouting."""
    lines = [
        "I sold 3 swords to Mr. Smith for 42 crowns on the 1st of May.",
        "Café, naïve, Zoë's façade: the rendezvous is at the château.",
        "WHAT?! No... don't. Whoa! Hmm. Ugh, pfft, shh, tsk.",
        "Judge the strength of rhythm: twelfth, sixths, squirrels, anxious jazz.",
    ]
    for path in sorted(CAST.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        lines.append(data["greeting"])
        lines += [ex["character"] for ex in data.get("examples", [])]
        lines += [ex["user"] for ex in data.get("examples", [])]
    return lines


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    return PiperTTS(threads=1)


@pytest.fixture(scope="module")
def espeak() -> EspeakTTS:
    return EspeakTTS()


def check_tiles(chunk: AudioChunk) -> None:
    """Phones start at 0, follow one another without gap or overlap, end with the audio."""
    phones = chunk.phones
    assert phones, "no phones"
    assert phones[0].start_ms == pytest.approx(0.0, abs=1e-6)
    for a, b in itertools.pairwise(phones):
        assert a.duration_ms >= 0
        assert a.start_ms + a.duration_ms == pytest.approx(b.start_ms, abs=1e-6)
    audio_ms = len(chunk.pcm) / chunk.sample_rate * 1000
    # one output sample of slack: Piper's pitch shift resamples the audio
    assert phones[-1].start_ms + phones[-1].duration_ms == pytest.approx(
        audio_ms, abs=1000 / chunk.sample_rate + 1e-6
    )


def check_words(text: str, chunks: list[AudioChunk]) -> None:
    """Each word of the text is timed once, in the order spoken."""
    spans: dict[int, tuple[float, float]] = {}
    offset = 0.0
    for c in chunks:
        for w, (a, b) in word_spans(c.phones).items():
            assert w not in spans, f"word {w} in two chunks"
            spans[w] = (a + offset, b + offset)
        offset += len(c.pcm) / c.sample_rate * 1000
    assert sorted(spans) == list(range(len(words_of(text)))), (text, sorted(spans))
    onsets = [spans[w][0] for w in sorted(spans)]
    assert onsets == sorted(onsets)


@pytest.mark.parametrize(
    "voice", [VoiceConfig(), VoiceConfig(pitch=1.15, rate=0.9), VoiceConfig(pitch=0.9, rate=1.2)]
)
def test_piper_phones_tile_the_audio_and_time_every_word(piper, voice) -> None:
    text = "Aye, the forge burns hot. Of the forty-two swords, I sold 3 to Mr. Smith."
    chunks = list(piper.synthesize(text, voice))
    assert len(chunks) >= 2  # Piper splits "Mr. Smith": words are counted across chunks
    for c in chunks:
        check_tiles(c)
    check_words(text, chunks)


@pytest.mark.parametrize(
    "voice",
    [VoiceConfig(engine="espeak"), VoiceConfig(engine="espeak", voice="en-gb+f3", rate=1.15,
                                               pitch=1.1)],
)  # fmt: skip
def test_espeak_phones_tile_the_audio_and_time_every_word(espeak, voice) -> None:
    text = "Oi, boss! Of the forty-two pies, I sold 3 to Mr. Smith."
    chunks = list(espeak.synthesize(text, voice))
    assert len(chunks) == 1
    check_tiles(chunks[0])
    check_words(text, chunks)


def test_every_phoneme_the_engines_emit_for_the_corpus_has_a_viseme(piper, espeak) -> None:
    seen: set[str] = set()
    for line in corpus():
        for chunk in [
            *piper.synthesize(line, VoiceConfig()),
            *espeak.synthesize(line, VoiceConfig(engine="espeak", voice="en-gb+f3")),
            *espeak.synthesize(line, VoiceConfig(engine="espeak")),
        ]:
            for ph in chunk.phones:
                viseme_of(ph.symbol)  # KeyError names a sound the table lacks
                if not is_pause(ph.symbol):
                    seen.add(ph.symbol[0])
    # the corpus exercises the table widely, not just a handful of sounds
    assert len(seen) >= 30 and seen <= set(TABLE)


def test_the_whole_piper_voice_inventory_has_a_viseme(piper) -> None:
    voice = piper._voice("default")
    for symbol in voice.config.phoneme_id_map:
        viseme_of(symbol)


def test_espeak_child_that_dies_is_restarted(espeak) -> None:
    list(espeak.synthesize("Hello.", VoiceConfig(engine="espeak")))
    os.kill(espeak._children[0].pid, signal.SIGKILL)
    chunks = list(espeak.synthesize("Still here.", VoiceConfig(engine="espeak")))
    assert chunks and chunks[0].phones


def test_espeak_child_that_hangs_is_an_engine_error_then_replaced() -> None:
    tts = EspeakTTS(timeout_s=1.0)
    list(tts.synthesize("Hello.", VoiceConfig(engine="espeak")))
    hung = tts._children[0]
    os.kill(hung.pid, signal.SIGSTOP)
    with pytest.raises(EngineError, match="timed out"):
        list(tts.synthesize("Are you there?", VoiceConfig(engine="espeak")))
    assert hung.poll() is not None  # killed, not left behind
    assert next(iter(tts.synthesize("Back again.", VoiceConfig(engine="espeak")))).phones


def test_espeak_unknown_voice_leaves_the_child_serving(espeak) -> None:
    with pytest.raises(EngineError, match="nosuchvoice"):
        list(espeak.synthesize("Hello.", VoiceConfig(engine="espeak", voice="nosuchvoice")))
    assert next(iter(espeak.synthesize("Hello.", VoiceConfig(engine="espeak")))).phones


def test_piper_keeps_the_voice_with_its_duration_output_in_the_cache(tmp_path) -> None:
    PiperTTS(threads=1, cache_dir=tmp_path)
    (edited,) = tmp_path.glob("*.onnx")
    made = edited.stat().st_mtime_ns
    again = PiperTTS(threads=1, cache_dir=tmp_path)  # loads the edited copy, edits nothing
    assert list(tmp_path.glob("*.onnx")) == [edited] and edited.stat().st_mtime_ns == made
    chunk = next(iter(again.synthesize("Hello there.", VoiceConfig())))
    check_tiles(chunk)
