"""Kokoro's pure parts: voice specs, the espeak-ng -> Kokoro phoneme rewrite, phone timing,
and the install step's tarball handling (no model needed)."""

from __future__ import annotations

import io
import itertools
import tarfile

import numpy as np
import pytest

from personae.daemon.engines import registry
from personae.daemon.engines.kokoro_phonemes import MAX_TOKENS, VOCAB, split_long, to_kokoro
from personae.daemon.engines.kokoro_voices import parse_blend
from personae.daemon.engines.tts_kokoro import SAMPLE_RATE, SAMPLES_PER_FRAME, phones_of
from personae.daemon.errors import ConfigError, ModelNotFoundError
from personae.daemon.models import kokoro as prep
from personae.daemon.settings import Settings

VOICES = {"af_sky", "bf_lily", "am_adam", "af_heart"}


def test_a_blend_is_normalised_and_its_heaviest_voice_sets_the_accent() -> None:
    blend = parse_blend("bf_lily:0.6, af_sky:0.2", VOICES)
    assert blend.parts == (("bf_lily", pytest.approx(0.75)), ("af_sky", pytest.approx(0.25)))
    assert blend.accent == "b"
    assert parse_blend("af_sky", VOICES).parts == (("af_sky", 1.0),)
    assert parse_blend("default", VOICES).parts == (("af_heart", 1.0),)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("af_skyy", "unknown Kokoro voice 'af_skyy' in 'af_skyy'; available: af_heart, af_sky"),
        ("af_sky:loud", "weight 'loud' of 'af_sky' is not a number"),
        ("af_sky:0", "weight of 'af_sky' must be above 0"),
        ("af_sky:-1,bf_lily", "weight of 'af_sky' must be above 0"),
        ("af_sky:nan", "weight of 'af_sky' must be above 0"),
        ("af_sky,af_sky", "'af_sky' appears twice"),
        ("af_sky,,bf_lily", "empty voice name"),
        ("en-us+f3", "unknown Kokoro voice 'en-us+f3'"),
    ],
)
def test_a_bad_voice_spec_is_refused_saying_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_blend(spec, VOICES)
    assert message in str(err.value)


def test_espeak_ipa_is_rewritten_into_kokoros_phonemes() -> None:
    # espeak-ng en-us: "Why, judge? Button, church, joy, go, miller out"
    assert to_kokoro("wˈaɪ,", "a") == "wˈI,"
    assert to_kokoro("dʒˈʌdʒ?", "a") == "ʤˈʌʤ?"
    assert to_kokoro("bˈʌʔn̩", "a") == "bˈʌtᵊn"
    assert to_kokoro("tʃˈɜːtʃ dʒˈɔɪ ɡˈoʊ", "a") == "ʧˈɜɹʧ ʤˈY ɡˈO"
    assert to_kokoro("mˈɪlɚɹ ˈaʊt ɐɡˈoʊ", "a") == "mˈɪləɹ ˈWt əɡˈO"
    # British keeps length marks and has its own diphthongs
    assert to_kokoro("həlˈəʊ ðˈeə", "b") == "həlˈQ ðˈɛː"
    # anything outside the vocabulary is dropped, never sent as an unknown id
    out = to_kokoro("a\u0361b ʔ x😀", "a")
    assert set(out) <= set(VOCAB) and out == "ab t k"


def test_long_phoneme_strings_are_cut_at_spaces_within_the_models_limit() -> None:
    text = " ".join(["hˈɛloʊ"] * 200)
    pieces = split_long(text)
    assert "".join(pieces) == text
    assert all(len(p) <= MAX_TOKENS for p in pieces) and len(pieces) == 3
    assert all(p.endswith(" ") for p in pieces[:-1])
    assert split_long("x" * 600) == ["x" * 510, "x" * 90]


def test_phones_tile_the_audio_with_stress_folded_into_the_vowel() -> None:
    phonemes = "ðə ˈOld,"
    frames = np.array([12, 2, 3, 2, 1, 6, 3, 2, 8, 4], np.float32)  # pads at both ends
    ms = 1000 * SAMPLES_PER_FRAME / SAMPLE_RATE
    phones = phones_of(phonemes, frames, 1.0, first_word=5)
    assert [p.symbol for p in phones] == ["", "ð", "ə", " ", "oʊ", "l", "d", "", ""]
    assert [p.word for p in phones] == [-1, 5, 5, -1, 6, 6, 6, -1, -1]
    assert phones[4].start_ms == pytest.approx(19 * ms)  # the stress mark's frame starts it
    assert phones[4].duration_ms == pytest.approx(7 * ms)
    for a, b in itertools.pairwise(phones):
        assert b.start_ms == pytest.approx(a.start_ms + a.duration_ms)
    assert sum(p.duration_ms for p in phones) == pytest.approx(frames.sum() * ms)
    half = phones_of(phonemes, frames, 0.5, first_word=0)
    assert sum(p.duration_ms for p in half) == pytest.approx(frames.sum() * ms / 2)


def test_kokoro_is_registered_with_its_extra() -> None:
    assert "kokoro" in registry.available("tts")
    assert registry.extra("tts", "kokoro") == "kokoro"


def test_the_daemon_never_downloads_an_unprepared_kokoro(tmp_path) -> None:
    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="run `personae prepare`"):
        prep.kokoro_dir(settings)
    assert list(tmp_path.iterdir()) == []


def _tarball(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_only_english_voices_and_the_licence_are_taken_from_the_npm_tarball(tmp_path) -> None:
    voice = bytes(prep.VOICE_BYTES)
    path = tmp_path / "k.tgz"
    path.write_bytes(
        _tarball(
            {
                "package/LICENSE": b"Apache",
                "package/voices/af_sky.bin": voice,
                "package/voices/bm_lewis.bin": voice,
                "package/voices/jf_alpha.bin": voice,  # Japanese: not English
                "package/voices/../../evil.bin": voice,  # never a path outside
                "package/dist/kokoro.js": b"js",
            }
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    assert prep._extract_voices(path, out) == ["af_sky", "bm_lewis"]
    assert sorted(p.name for p in (out / "voices").iterdir()) == ["af_sky.bin", "bm_lewis.bin"]
    assert (out / "LICENSE").read_bytes() == b"Apache"
    assert not (tmp_path / "evil.bin").exists()


def test_a_truncated_voice_in_the_tarball_is_refused(tmp_path) -> None:
    path = tmp_path / "k.tgz"
    path.write_bytes(_tarball({"package/LICENSE": b"x", "package/voices/af_sky.bin": b"\0" * 8}))
    (tmp_path / "out").mkdir()
    with pytest.raises(ConfigError, match=r"af_sky\.bin has 8 bytes"):
        prep._extract_voices(path, tmp_path / "out")
