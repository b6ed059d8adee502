"""Attribution measured on a public-domain novel with a first-person narrator.

The fixture is chapters I–IV of Arthur Conan Doyle's *The Sign of the Four* (1890,
public domain), the Project Gutenberg plain text with curly quotes as distributed,
hand-labelled quote by quote (212 opening marks: 204 speeches, 8 quoted words nobody
says, 11 paragraphs continuing a speech of several paragraphs). Watson narrates.
The British-quoted version is the same text with the marks swapped (doubles become
singles, the quotations nested in speech become doubles), so every label keeps its
offset.
"""

from __future__ import annotations

import re

import pytest

from personae.training.dialogue import Attributor, Speaker, extract_all
from personae.training.ingest import clean_text, split_chapters

from .labelled import continuations, load, score

BOOK = "sign_of_four_labelled.txt"
CAST = [
    Speaker("watson", ("Dr. Watson", "Watson"), "he"),
    Speaker("holmes", ("Sherlock Holmes", "Holmes", "my companion"), "he"),
    Speaker("morstan", ("Miss Mary Morstan", "Miss Morstan", "Mary Morstan", "our visitor"), "she"),
    Speaker(
        "thaddeus",
        ("Mr. Thaddeus Sholto", "Thaddeus Sholto", "Thaddeus", "the little man"),
        "he",
    ),
    Speaker("hudson", ("Mrs. Hudson", "our landlady"), "she"),
    Speaker("williams", ("Williams",), "he"),
    Speaker("khitmutgar", ("the khitmutgar", "the Indian"), "he"),
]
NAMED = {s.id for s in CAST}


def british(text: str) -> str:
    """Doubles become singles; singles nested in speech become doubles. One mark for
    one mark, so offsets hold. Apostrophes stay."""
    out = list(text)
    depth = 0
    for i, ch in enumerate(text):
        if ch == "“":
            out[i] = "‘"
            depth += 1
        elif ch == "”":
            out[i] = "’"
            depth = max(0, depth - 1)
        elif ch == "‘" and depth and (i == 0 or not text[i - 1].isalnum()):
            out[i] = "“"
            # its closing mark: the next ’ that is not an apostrophe
            for j in range(i + 1, len(text)):
                if text[j] == "’" and not (j + 1 < len(text) and text[j + 1].isalnum()):
                    out[j] = "”"
                    break
        if ch == "\n" and i + 1 < len(text) and text[i + 1] == "\n":
            depth = 0
    return "".join(out)


def _run(text: str, speakers=CAST, narrator: str | None = "watson"):
    source = clean_text(text)
    chapters = split_chapters(source, source=BOOK)
    attributor = Attributor(speakers, narrator=narrator)
    predicted: dict[int, str | None] = {}
    groups: list[list[int]] = []
    for ch, utterances in zip(chapters, extract_all(chapters, attributor), strict=True):
        for u in utterances:
            starts = [ch.offset + q for q in u.quote_starts]
            groups.append(starts)
            for q in starts:
                predicted[q] = u.speaker
    return source, chapters, predicted, groups


def _key(text: str, offset: int) -> str:
    return re.sub(r"\s+", " ", text[offset : offset + 60])[:28]


def _merged_share(text: str, source: str, groups: list[list[int]]) -> float:
    """Share of labelled continuation paragraphs found in the same utterance as the
    paragraph before them."""
    conts = continuations(BOOK)
    keys = {_key(text, c) for c in conts}
    merged = 0
    for g in groups:
        merged += sum(1 for q in g[1:] if _key(source, q) in keys)
    return merged / len(conts)


@pytest.mark.parametrize("quotes", ["curly doubles", "british singles"])
def test_first_person_novel_meets_the_targets(quotes: str) -> None:
    text, labels = load(BOOK)
    if quotes == "british singles":
        text = british(text)
    assert sum(1 for s in labels.values() if s != "-") >= 200
    source, _, predicted, groups = _run(text)
    precision, recall, errors = score(text, labels, source, predicted, NAMED)
    merged = _merged_share(text, source, groups)
    print(f"{quotes}: precision {precision:.3f} recall {recall:.3f} merged {merged:.2f}")
    assert precision >= 0.90, errors
    assert recall >= 0.70, errors
    assert merged >= 0.90


def test_the_narrator_is_a_speaker() -> None:
    text = "“Which is it to-day?” I asked.\n\n“Cocaine,” said Holmes.\n\n“Right!” said I."
    (utts,) = extract_all(split_chapters(text, source="t"), Attributor(CAST, narrator="watson"))
    assert [u.speaker for u in utts] == ["watson", "holmes", "watson"]


def test_without_a_narrator_i_is_nobody() -> None:
    text = "“Right!” said I."
    (utts,) = extract_all(split_chapters(text, source="t"), Attributor(CAST))
    assert utts[0].speaker is None


def test_names_are_not_invented_from_places_titles_or_one_tag() -> None:
    text = (
        "“Good-night,” said Baker Street.\n\n“Good-night,” said Baker Street.\n\n"
        "“Yes,” said Mr.\n\n“Yes,” said Mr.\n\n“Once,” said Pike."
    )
    attributor = Attributor([Speaker("watson", ("Watson",), "he")])
    (utts,) = extract_all(split_chapters(text, source="t"), attributor)
    assert [u.speaker for u in utts] == [None] * 5
    assert set(attributor.speakers) == {"watson"}


def test_a_name_in_two_tags_becomes_a_minor_speaker() -> None:
    text = "“Once,” said Inspector Jones.\n\n“Twice,” said Inspector Jones."
    attributor = Attributor([Speaker("watson", ("Watson",), "he")])
    (utts,) = extract_all(split_chapters(text, source="t"), attributor)
    assert [u.speaker for u in utts] == ["inspector-jones"] * 2


def test_a_speech_of_four_paragraphs_is_one_utterance() -> None:
    text = "“One,” said Holmes. “Two\n\n“Three\n\n“Four\n\n“Five.”\n\n“Next,” said I."
    (utts,) = extract_all(split_chapters(text, source="t"), Attributor(CAST, narrator="watson"))
    assert [(u.text, u.speaker) for u in utts] == [
        ("One. Two Three Four Five.", "holmes"),
        ("Next.", "watson"),
    ]


def _book_pdf(text: str, path, *, running_header: bool) -> None:  # type: ignore[no-untyped-def]
    """The chapters typeset like a printed book: first-line indents and no space between
    paragraphs, optionally a running header and page numbers."""
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A5
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    body = ParagraphStyle("b", fontName="Times-Roman", fontSize=10, leading=12, firstLineIndent=14)
    head = ParagraphStyle("h", fontName="Times-Bold", fontSize=14, leading=18, spaceBefore=24)
    story = []
    for block in text.split("\n\n"):
        block = re.sub(r"\s+", " ", block).strip()
        if not block:
            continue
        story.append(Paragraph(escape(block), head if block.startswith("Chapter ") else body))

    def furniture(canvas, doc) -> None:  # type: ignore[no-untyped-def]
        if running_header:
            canvas.setFont("Times-Roman", 8)
            canvas.drawCentredString(A5[0] / 2, A5[1] - 30, "THE SIGN OF THE FOUR")
            canvas.drawCentredString(A5[0] / 2, 25, str(doc.page))

    SimpleDocTemplate(str(path), pagesize=A5).build(
        story, onFirstPage=furniture, onLaterPages=furniture
    )


@pytest.mark.parametrize("running_header", [False, True])
def test_a_pdf_of_the_same_chapters_keeps_its_paragraphs_and_precision(
    tmp_path, running_header: bool
) -> None:  # type: ignore[no-untyped-def]
    from personae.training.ingest import ingest_file

    text, labels = load(BOOK)
    source, _, predicted, _ = _run(text)
    text_precision, text_recall, _ = score(text, labels, source, predicted, NAMED)
    pdf = tmp_path / "sign.pdf"
    _book_pdf(text, pdf, running_header=running_header)
    report: dict = {}
    chapters = ingest_file(pdf, report)
    attributor = Attributor(CAST, narrator="watson")
    found: dict[int, str | None] = {}
    pdf_text = "\n\n".join(c.text for c in chapters)  # offsets rebuilt below
    pos = 0
    for ch, utterances in zip(chapters, extract_all(chapters, attributor), strict=True):
        for u in utterances:
            for q in u.quote_starts:
                found[pos + q] = u.speaker
        pos += len(ch.text) + 2
    precision, recall, errors = score(text, labels, pdf_text, found, NAMED)
    print(
        f"pdf header={running_header}: precision {precision:.3f} recall {recall:.3f}, "
        f"text {text_precision:.3f}/{text_recall:.3f}; {report['paragraphs']} paragraphs"
    )
    assert abs(precision - text_precision) <= 0.03, errors
    assert recall >= 0.70
    # every paragraph break of the text survives
    (tmp_path / "sign.txt").write_text(text, encoding="utf-8")
    plain: dict = {}
    ingest_file(tmp_path / "sign.txt", plain)
    assert report["paragraphs"] == plain["paragraphs"]
    if running_header:
        assert report["running_headers"] and report["page_numbers"] > 5


def test_first_person_retelling_of_a_first_person_source() -> None:
    from personae.training.rewrite import rule_rewrite, third_person_problems

    holmes, watson = CAST[1], CAST[0]
    watsons = "I handed him over the watch with some slight feeling of amusement in my heart."
    # the narrator's own passages are already his retelling
    assert rule_rewrite(watsons, watson, CAST, narrator="watson") == watsons
    assert third_person_problems(watsons, watson, narrator=True) == []
    # Holmes cannot take over a passage where someone else already says "I"
    both = "Holmes and I surveyed this curt announcement and the rueful face behind it."
    assert rule_rewrite(both, holmes, CAST, narrator="watson") is None
    assert "garbled" in " ".join(third_person_problems("I and I surveyed it.", holmes))
    # a third-person passage about Holmes alone is still rewritten
    solo = "Holmes rubbed his hands, and his eyes glistened. He leaned forward in his chair."
    assert rule_rewrite(solo, holmes, [holmes]) == (
        "I rubbed my hands, and my eyes glistened. I leaned forward in my chair."
    )


def test_a_surname_and_the_full_name_are_one_minor_speaker() -> None:
    text = (
        "“One,” said Jones.\n\n“Two,” said Jones.\n\n“Three,” said Athelney Jones.\n\n"
        "“Four,” said Mr. Athelney Jones."
    )
    attributor = Attributor([Speaker("watson", ("Watson",), "he")])
    (utts,) = extract_all(split_chapters(text, source="t"), attributor)
    assert [u.speaker for u in utts] == ["jones"] * 4


@pytest.mark.parametrize(
    ("para", "expected"),
    [
        (
            "‘The “G” with the small “t” stands for “Gesellschaft,”’ said he.",
            ["The “G” with the small “t” stands for “Gesellschaft,”"],
        ),
        (
            "‘They are at their wits’ end,’ said he. ‘Quite.’",
            ["They are at their wits’ end,", "Quite."],
        ),
        ("“He said ‘Keep him out!’ and died,” said I.", ["He said ‘Keep him out!’ and died,"]),
        ("He wrote of stray “magnifiques,” “coup-de-maîtres,” and “tours-de-force.”", []),
    ],
)
def test_nested_quotes_and_possessives(para: str, expected: list[str]) -> None:
    from personae.training.quotes import find_quotes

    assert [q.text for q in find_quotes(para)] == expected
