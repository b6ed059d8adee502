"""Strategy A: quotes in each convention, and speaker attribution measured on
hand-labelled text (see labelled.py for the label format)."""

from __future__ import annotations

import pytest

from personae.daemon.characters import default_cast_dir, load_cast
from personae.training.dialogue import Attributor, Speaker, dialogue_examples, extract_all
from personae.training.ingest import clean_text, split_chapters
from personae.training.quotes import find_quotes

from .labelled import load, score

HOLLOWMERE = [
    Speaker("bram", ("Bram Holloway", "Bram", "the smith", "Master Holloway"), "he"),
    Speaker("mara", ("Mara Quill", "Mara", "the archivist", "Mistress Quill"), "she"),
    Speaker("wren", ("Wren", "the courier"), "she"),
]
MINOR = [
    Speaker("pike", ("Reeve Aldous Pike", "Pike", "the Reeve"), "he"),
    Speaker("tobias", ("Tobias Finch", "Tobias", "Toby"), "he"),
    Speaker("nell", ("Nell Sparrow", "Nell"), "she"),
]


@pytest.mark.parametrize(
    ("para", "expected"),
    [
        ('"Iron," said Bram. "Good iron."', ["Iron,", "Good iron."]),
        ("“Who drew this?” Mara asked.", ["Who drew this?"]),
        (
            "‘Nothing’s wrong, Toby,’ she said. ‘Don’t fret.’",
            ["Nothing’s wrong, Toby,", "Don’t fret."],
        ),
        ("'Bram's here,' said Wren. 'Don't.'", ["Bram's here,", "Don't."]),
        (
            "\"He said 'fetch the smith' and left,\" said Wren.",
            ["He said 'fetch the smith' and left,"],
        ),
        ("The smiths’ hammers rang all day.", []),
        ('"This goes on', ["This goes on"]),
    ],
)
def test_quote_conventions(para: str, expected: list[str]) -> None:
    assert [q.text for q in find_quotes(para)] == expected


def _measure(name: str, speakers: list[Speaker], targets: set[str], *, clean: bool):
    text, labels = load(name)
    source = clean_text(text) if clean else text
    chapters = split_chapters(source, source=name)
    attributor = Attributor(speakers)
    predicted = {}
    for ch, utterances in zip(chapters, extract_all(chapters, attributor), strict=True):
        for u in utterances:
            for q in u.quote_starts:
                predicted[ch.offset + q] = u.speaker
    return score(text, labels, source, predicted, targets)


def test_attribution_on_the_story_with_the_whole_cast_named() -> None:
    everyone = {s.id for s in HOLLOWMERE + MINOR}
    precision, recall, errors = _measure(
        "hollowmere_labelled.md", HOLLOWMERE + MINOR, everyone, clean=False
    )
    print(f"hollowmere, six speakers named: precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.90, errors
    assert recall >= 0.65


def test_attribution_on_the_story_with_only_the_targets_named() -> None:
    """The realistic case: the recipe names three characters; minor ones are found from tags."""
    precision, recall, errors = _measure(
        "hollowmere_labelled.md", HOLLOWMERE, {"bram", "mara", "wren"}, clean=False
    )
    print(f"hollowmere, three targets named: precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.90, errors
    assert recall >= 0.60


def test_attribution_on_hard_wrapped_single_quoted_text() -> None:
    speakers = [
        Speaker("tobias", ("Tobias Finch", "Tobias"), "he"),
        Speaker("nell", ("Nell",), "she"),
        Speaker("captain", ("the Captain", "the stranger"), "he"),
    ]
    precision, recall, errors = _measure(
        "ferry_labelled.txt", speakers, {"tobias", "nell", "captain"}, clean=True
    )
    print(f"ferry: precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.90, errors
    assert recall >= 0.5


def test_multi_paragraph_speech_is_one_utterance() -> None:
    text, _ = load("ferry_labelled.txt")
    chapters = split_chapters(clean_text(text), source="ferry")
    (utterances,) = extract_all(chapters, Attributor([Speaker("captain", ("the Captain",), "he")]))
    walked = next(u for u in utterances if u.text.startswith("I walked"))
    assert "Ask your gran about the Marrow" in walked.text
    assert not any(u.text.startswith("Ask your gran") for u in utterances)


def test_dash_lines_drop_the_tag_and_keep_the_speech() -> None:
    text = "— Yes, said Bram. Badly.\n\n— And well?\n\n— In a week, Bram said."
    (utterances,) = extract_all(split_chapters(text, source="d"), Attributor(HOLLOWMERE + MINOR))
    assert [(u.text, u.speaker) for u in utterances] == [
        ("Yes. Badly.", "bram"),
        ("And well?", None),
        ("In a week.", "bram"),
    ]


def test_examples_pair_a_line_with_the_line_before_and_keep_provenance() -> None:
    text = '"Shut the door," said Bram.\n\n"It\'s open for the heat," said Wren.\n\n"Then stop letting the cold in," said Bram.'
    chapters = split_chapters(text, source="s.txt")
    (utterances,) = extract_all(chapters, Attributor(HOLLOWMERE))
    examples = dialogue_examples(chapters[0], utterances, {"bram"})
    assert [(e["user"], e["assistant"]) for e in examples] == [
        ("It's open for the heat.", "Then stop letting the cold in.")
    ]
    assert examples[0]["provenance"] == {
        "file": "s.txt",
        "chapter": 0,
        "chapter_title": "(opening)",
        "offset": text.index('"Then'),
    }


def test_default_cast_files_give_speakers() -> None:
    cast = load_cast([default_cast_dir()])
    bram = Speaker.from_character(cast["bram"], "he", ["the smith"])
    assert "Bram" in bram.names and "the smith" in bram.names and bram.pronouns == "he"
