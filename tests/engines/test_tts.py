"""Piper and espeak-ng: what they say transcribes back, and pitch/rate do what they claim."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from personae.daemon.audio import int16_to_float32, resample
from personae.daemon.characters import VoiceConfig
from personae.daemon.engines import registry
from personae.daemon.engines.base import AudioChunk
from personae.daemon.engines.stt_faster_whisper import FasterWhisperSTT
from personae.daemon.engines.tts_espeak import EspeakTTS
from personae.daemon.engines.tts_piper import PiperTTS, bundled_voice_path
from personae.daemon.errors import ConfigError, EngineError
from tests.speech import median_f0, words

pytestmark = pytest.mark.models

SENTENCE = "The old lighthouse keeper lit the lamp before the storm."
KEY_WORDS = {"lighthouse", "lamp", "storm"}
# espeak-ng's formant voice is harder to understand: a sentence whisper gets right.
ESPEAK_SENTENCE = "Please bring the lantern to the market before noon."
ESPEAK_KEY_WORDS = {"lantern", "market", "noon"}


def to_16k(chunks: list[AudioChunk]) -> np.ndarray:
    assert chunks, "no audio"
    rate = chunks[0].sample_rate
    assert all(c.pcm.dtype == np.int16 and c.sample_rate == rate for c in chunks)
    return resample(int16_to_float32(np.concatenate([c.pcm for c in chunks])), rate, 16_000)


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    return PiperTTS(threads=1)


@pytest.fixture(scope="module")
def espeak() -> EspeakTTS:
    return EspeakTTS()


@pytest.fixture(scope="module")
def stt(settings) -> FasterWhisperSTT:
    return FasterWhisperSTT.from_settings(settings)


@pytest.fixture(scope="module")
def pitch_variants(piper) -> dict[float, np.ndarray]:
    """One voice as three characters: about 2 semitones down, as is, 3 up."""
    return {
        p: to_16k(list(piper.synthesize(SENTENCE, VoiceConfig(pitch=p)))) for p in (0.9, 1.0, 1.2)
    }


# --- Piper ---


def test_piper_deterministic_speaks_the_same_audio_every_time(piper):
    """Piper samples noise for each utterance; `deterministic` turns it off, so tests
    (and pre-rendered lines) hear identical audio on every run."""
    line = "Sell me a sword."
    fixed = PiperTTS(threads=1, deterministic=True)
    a, b = (to_16k(list(fixed.synthesize(line, VoiceConfig()))) for _ in range(2))
    assert a.shape == b.shape and np.array_equal(a, b)
    c, d = (to_16k(list(piper.synthesize(line, VoiceConfig()))) for _ in range(2))
    assert c.shape != d.shape or not np.array_equal(c, d)


def test_piper_speaks_int16_at_voice_rate_and_transcribes(pitch_variants, stt, piper):
    chunks = list(piper.synthesize(SENTENCE, VoiceConfig()))
    assert len(chunks) == 1 and chunks[0].sample_rate == 22_050 == piper.sample_rate()
    assert chunks[0].pcm.dtype == np.int16 and 1.5 < len(chunks[0].pcm) / 22_050 < 6
    assert KEY_WORDS <= words(stt.transcribe(to_16k(chunks)).text)


def test_piper_yields_one_chunk_per_sentence(piper):
    chunks = list(
        piper.synthesize("Good morning. The forge is hot! Do you need a blade?", VoiceConfig())
    )
    assert len(chunks) == 3


def test_pitch_variants_differ_in_pitch_not_duration_and_transcribe(pitch_variants, stt):
    f0 = {p: median_f0(x, 16_000) for p, x in pitch_variants.items()}
    assert f0[0.9] < f0[1.0] < f0[1.2]
    for p in (0.9, 1.2):
        assert f0[p] / f0[1.0] == pytest.approx(p, rel=0.06), f0
    base_len = len(pitch_variants[1.0])
    for p, x in pitch_variants.items():
        assert len(x) == pytest.approx(base_len, rel=0.12), p
        text = stt.transcribe(x).text
        # Piper samples its prosody, so no two runs sound alike: whisper once heard
        # "old like house keeper"; two of the three key words in each variant still
        # tell speech that survived the pitch shift from noise
        assert len(KEY_WORDS & words(text)) >= 2, (p, text)


def test_rate_changes_duration_not_pitch(piper, pitch_variants):
    fast = to_16k(list(piper.synthesize(SENTENCE, VoiceConfig(rate=1.5))))
    normal = pitch_variants[1.0]
    # Piper rounds each phoneme up to whole frames, so speed follows rate only roughly.
    assert 0.6 < len(fast) / len(normal) < 0.8
    # Piper lifts its intonation a little when hurried; a 1.5x tape-speed shift would be 50%.
    assert 0.95 < median_f0(fast, 16_000) / median_f0(normal, 16_000) < 1.12


def test_piper_voice_by_path_and_missing_voice(piper, tmp_path):
    chunks = list(piper.synthesize("Hello.", VoiceConfig(voice=str(bundled_voice_path()))))
    assert chunks and chunks[0].sample_rate == 22_050
    with pytest.raises(ConfigError, match="not found"):
        list(piper.synthesize("Hello.", VoiceConfig(voice=str(tmp_path / "nobody.onnx"))))


def test_piper_check_voice_refuses_missing_and_corrupt_models(piper, tmp_path):
    piper.check_voice(VoiceConfig(voice=str(bundled_voice_path())))  # fine
    with pytest.raises(ConfigError, match="not found"):
        piper.check_voice(VoiceConfig(voice=str(tmp_path / "nobody.onnx")))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    broken.with_name("broken.onnx.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'.*broken\.onnx' could not be loaded"):
        piper.check_voice(VoiceConfig(voice=str(broken)))


def test_espeak_check_voice_names_the_unknown_language_or_variant(espeak):
    espeak.check_voice(VoiceConfig(engine="espeak", voice="en-gb+m2"))  # fine
    espeak.check_voice(VoiceConfig(engine="espeak", voice="default"))
    with pytest.raises(ConfigError, match=r"'xx-nope'.*not found"):
        espeak.check_voice(VoiceConfig(engine="espeak", voice="xx-nope"))
    # espeak-ng itself would speak the plain en-us voice for a misspelt variant
    with pytest.raises(ConfigError, match="variant 'f33' not found"):
        espeak.check_voice(VoiceConfig(engine="espeak", voice="en-us+f33"))
    with pytest.raises(EngineError, match="variant 'f33'"):
        list(espeak.synthesize("Hello.", VoiceConfig(engine="espeak", voice="en-us+f33")))
    assert list(espeak.synthesize("Hello.", VoiceConfig(engine="espeak", voice="en-us+f3")))


def test_piper_nothing_to_say_yields_nothing(piper):
    assert list(piper.synthesize("", VoiceConfig())) == []


def test_piper_concurrent_use(piper):
    results: dict[int, int] = {}

    def work(i: int) -> None:
        results[i] = sum(
            len(c.pcm) for c in piper.synthesize(SENTENCE, VoiceConfig(pitch=1 + i / 10))
        )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(n > 22_050 for n in results.values())


# --- espeak-ng ---


def test_espeak_speaks_and_transcribes(espeak, stt):
    chunks = list(espeak.synthesize(ESPEAK_SENTENCE, VoiceConfig(engine="espeak")))
    assert len(chunks) == 1 and chunks[0].sample_rate == 22_050
    assert ESPEAK_KEY_WORDS <= words(stt.transcribe(to_16k(chunks)).text)


def test_espeak_voice_rate_and_pitch(espeak):
    def say(**kw) -> np.ndarray:
        config = VoiceConfig(engine="espeak", **kw)
        return to_16k(list(espeak.synthesize(ESPEAK_SENTENCE, config)))

    normal, fast, high, female = say(), say(rate=1.5), say(pitch=1.3), say(voice="en-us+f3")
    assert len(fast) / len(normal) == pytest.approx(1 / 1.5, rel=0.15)
    f0 = median_f0(normal, 16_000)
    assert median_f0(high, 16_000) / f0 == pytest.approx(1.3, rel=0.1)
    assert median_f0(female, 16_000) / f0 > 1.5


def test_espeak_text_is_never_an_option(espeak, stt):
    chunks = list(espeak.synthesize("--please bring the lantern", VoiceConfig(engine="espeak")))
    assert "lantern" in words(stt.transcribe(to_16k(chunks)).text)


def test_espeak_unknown_voice_is_an_engine_error(espeak):
    with pytest.raises(EngineError, match="nosuchvoice"):
        list(espeak.synthesize("Hello.", VoiceConfig(engine="espeak", voice="nosuchvoice")))


def test_espeak_missing_library_says_how_to_install():
    with pytest.raises(ConfigError, match="apt-get install espeak-ng"):
        EspeakTTS(library="espeak-ng-not-installed")


def test_registry_builds_both(settings):
    assert isinstance(registry.create("tts", "espeak", settings), EspeakTTS)
    assert registry.engine_class("tts", "piper") is PiperTTS
