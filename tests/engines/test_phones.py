"""Phone folding, word alignment and the viseme table, on hand-made phones (no models)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from personae.daemon.engines.base import Phone
from personae.daemon.engines.phones import assign_words, fold, word_spans, words_of
from personae.daemon.engines.visemes import TABLE, VISEMES, viseme_of, visemes_of


def phones(symbols: str, ms: float = 10.0) -> list[Phone]:
    return [Phone(s, i * ms, ms) for i, s in enumerate(symbols)]


def test_fold_gives_stress_to_the_next_sound_and_length_to_the_one_before() -> None:
    out = fold(phones("^hˈoː _$"))
    assert [p.symbol for p in out] == [" ", "h", "oː", " "]
    # ˈ (20-30 ms) goes to o, which starts at the mark; ː lengthens it
    assert (out[2].start_ms, out[2].duration_ms) == (20.0, 30.0)
    assert sum(p.duration_ms for p in out) == 80.0  # nothing lost
    assert [(p.start_ms, p.duration_ms) for p in out][-1] == (50.0, 30.0)  # pauses merged


def test_fold_keeps_a_mark_with_nothing_to_modify_as_silence() -> None:
    out = fold(phones("ːa"))
    assert [p.symbol for p in out] == [" ", "a"] and out[0].duration_ms == 10.0


def test_words_of_drops_punctuation_keeps_contractions_and_hyphens() -> None:
    assert words_of("Oi, boss! Forty-two... don't *wave*") == [
        "Oi", "boss", "Forty-two", "don't", "wave"
    ]  # fmt: skip


def test_assign_words_finds_a_word_inside_a_group_the_phonemizer_joined() -> None:
    # espeak-ng phonemizes "of the forge" as "ʌvðə fˈɔːɹdʒ": two words in one group
    sentence = fold(phones("^ʌvðə fˈɔːɹdʒ$"))
    out = assign_words(sentence, ["ʌv", "ðə", "fˈɔːɹdʒ"])
    assert [(p.symbol, p.word) for p in out if p.word >= 0] == [
        ("ʌ", 0), ("v", 0), ("ð", 1), ("ə", 1),
        ("f", 2), ("ɔː", 2), ("ɹ", 2), ("d", 2), ("ʒ", 2),
    ]  # fmt: skip
    spans = word_spans(out)
    assert spans[1][0] == out[3].start_ms  # "the" starts at ð
    assert spans[0][0] < spans[1][0] < spans[2][0]


def test_assign_words_places_sounds_the_word_phonemes_disagree_on() -> None:
    # in context "the" became ði; alone it is ðə: the vowel still belongs to "the"
    out = assign_words(fold(phones("^ði ɛnd$")), ["ðə", "ˈɛnd"])
    assert [(p.symbol, p.word) for p in out if p.symbol != " "] == [
        ("ð", 0), ("i", 0), ("ɛ", 1), ("n", 1), ("d", 1)
    ]  # fmt: skip


def test_table_maps_only_to_the_fifteen_visemes() -> None:
    assert len(VISEMES) == 15 and set(TABLE.values()) <= set(VISEMES)


@pytest.mark.parametrize(
    ("symbol", "viseme"),
    [("p", "PP"), ("m", "PP"), ("f", "FF"), ("θ", "TH"), ("t", "DD"), ("k", "kk"),
     ("ʃ", "CH"), ("s", "SS"), ("n", "nn"), ("ɹ", "RR"), ("ɑː", "aa"), ("ɛ", "E"),
     ("ɪ", "ih"), ("ɔ", "oh"), ("uː", "ou"), ("w", "ou"), (" ", "sil"), ("ˈa", "aa")],
)  # fmt: skip
def test_viseme_of(symbol: str, viseme: str) -> None:
    assert viseme_of(symbol) == viseme


def test_visemes_merge_runs_and_tile_the_time() -> None:
    out = visemes_of(fold(phones("^bɒmb fɪʃ$")))
    assert [v.viseme for v in out] == ["sil", "PP", "aa", "PP", "sil", "FF", "ih", "CH", "sil"]
    assert out[3].duration_ms == 20.0  # m and b: one closed-lips span
    for a, b in itertools.pairwise(out):
        assert a.start_ms + a.duration_ms == pytest.approx(b.start_ms)


def test_a_word_said_differently_alone_still_gets_its_run() -> None:
    # "is a grand": in the sentence "a" is ɐ, alone espeak-ng says the letter, ˈeɪ
    out = assign_words(fold(phones("^ɪz ɐ ɡɹˈænd$")), ["ɪz", "ˈeɪ", "ɡɹˈænd"])
    assert [(p.symbol, p.word) for p in out if p.symbol != " "] == [
        ("ɪ", 0), ("z", 0), ("ɐ", 1), ("ɡ", 2), ("ɹ", 2), ("æ", 2), ("n", 2), ("d", 2)
    ]  # fmt: skip


def test_voiced_word_gaps_are_split_between_their_neighbours_quiet_ones_stay() -> None:
    from personae.daemon.engines.phones import join_voiced_gaps

    rate = 1000.0  # one sample per ms keeps the arithmetic plain
    # "ab cd": a, b, gap, c, d of 40 ms each, then a quiet gap and e
    phones = [Phone(s, i * 40.0, 40.0, w) for i, (s, w) in enumerate(
        [("a", 0), ("b", 0), (" ", -1), ("k", 1), ("d", 1), (" ", -1), ("e", 2)])]  # fmt: skip
    audio = np.full(280, 0.3, np.float32)
    audio[200:240] = 0.001  # the second gap is silent (40 dB under the speech)
    out = join_voiced_gaps(phones, audio, rate)
    assert [(p.symbol, p.start_ms, p.duration_ms, p.word) for p in out] == [
        ("a", 0.0, 40.0, 0), ("b", 40.0, 60.0, 0), ("k", 100.0, 60.0, 1), ("d", 160.0, 40.0, 1),
        (" ", 200.0, 40.0, -1), ("e", 240.0, 40.0, 2),
    ]  # fmt: skip
    assert sum(p.duration_ms for p in out) == 280.0


def test_a_missing_word_inside_a_run_gets_its_unmatched_sound() -> None:
    # espeak-ng runs "with a man" together with no pause: ɐ belongs to "a", not "with"
    out = assign_words(fold(phones("^wɪðɐmæn$")), ["wˈɪð", "ˈeɪ", "mˈæn"])
    assert [(p.symbol, p.word) for p in out if p.symbol != " "] == [
        ("w", 0), ("ɪ", 0), ("ð", 0), ("ɐ", 1), ("m", 2), ("æ", 2), ("n", 2)
    ]  # fmt: skip
