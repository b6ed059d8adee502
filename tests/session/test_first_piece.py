"""The reply's first piece goes to TTS at its first words; later pieces stay sentences."""

from __future__ import annotations

import pytest

from personae.daemon.session.splitter import SentenceSplitter, spoken_text


def split(text: str, step: int = 2, words: int = 5) -> list[str]:
    s = SentenceSplitter(first_clause_chars=16, first_words=words)
    out = []
    for i in range(0, len(text), step):
        out += s.push(text[i : i + step])
    return out + s.flush()


@pytest.mark.parametrize("step", [1, 2, 5])
def test_first_piece_ends_at_a_comma_a_conjunction_or_five_words(step: int) -> None:
    # a comma after two words
    assert split("Of course, I can mend it before dusk. Leave it here.", step) == [
        "Of course,",
        "I can mend it before dusk.",
        "Leave it here.",
    ]
    # before a conjunction, which starts the next piece
    assert split("I can mend it but not tonight. Come back.", step) == [
        "I can mend it",
        "but not tonight.",
        "Come back.",
    ]
    # no break at all: five words
    assert split("I can fix your sword before nightfall if you leave it here.", step) == [
        "I can fix your sword",
        "before nightfall if you leave it here.",
    ]


def test_first_piece_is_not_cut_after_a_word_that_leans_on_the_next() -> None:
    assert split("The old map of the river is kept in the hall.")[0] == "The old map of the river"
    assert split("I can do that for you today.") == ["I can do that for you", "today."]


def test_one_word_before_a_comma_is_not_a_piece() -> None:
    assert split("Aye, the forge burns hot and my hammer is ready.") == [
        "Aye, the forge burns hot",
        "and my hammer is ready.",
    ]


def test_later_pieces_stay_sentence_sized() -> None:
    text = "Well now, the mill. It burned, and then, they say, it rose again, stone by stone."
    assert split(text) == [
        "Well now,",
        "the mill.",
        "It burned, and then, they say, it rose again, stone by stone.",
    ]


def test_a_short_first_sentence_is_one_piece() -> None:
    assert split("Hello there. Yes, of course.") == ["Hello there.", "Yes, of course."]


def test_words_of_a_stage_direction_do_not_count() -> None:
    parts = split("*wipes her hands on the apron, then smiles* Welcome in, traveller. Sit.")
    assert spoken_text(parts[0]) == "Welcome in,"
    assert parts[1:] == ["traveller.", "Sit."]


def test_numbers_and_abbreviations_are_not_breaks() -> None:
    assert split("It costs 3,000 gold and a favour.") == ["It costs 3,000 gold", "and a favour."]
    assert split("Mr. Holloway has the map. Ask him.") == ["Mr. Holloway has the map.", "Ask him."]


def test_switched_off_the_first_piece_waits_for_its_clause() -> None:
    assert split("I can fix your sword before nightfall, if you pay.", words=0) == [
        "I can fix your sword before nightfall,",
        "if you pay.",
    ]


def test_the_words_are_all_spoken_once_in_order() -> None:
    text = "Aye, so the river map, the old one, is with Mara and her clerk. Ask them; they know."
    for step in (1, 3, 7):
        assert " ".join(split(text, step)).split() == text.split()


def test_bad_word_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="first_min_words"):
        SentenceSplitter(first_words=3, first_min_words=4)
