"""Ingest: each file kind, the cleaning rules, chapter splitting, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.training.errors import SourceError
from personae.training.ingest import clean_text, ingest_file, split_chapters

CHAPTERS = [
    (
        "Chapter One",
        ['"Iron doesn\'t lie," said Bram.', "Mara unrolled the map and frowned at it."],
    ),
    ("Chapter Two", ["“Who drew this?” Mara asked.", "Wren laughed from the rafters."]),
]


def _check(chapters) -> None:
    assert [c.title for c in chapters] == ["Chapter One", "Chapter Two"]
    assert "said Bram" in chapters[0].text and "Mara asked" in chapters[1].text
    assert all(c.source for c in chapters)


def test_cleaning_removes_page_furniture_and_boilerplate() -> None:
    words = ["anvil", "bellows", "tongs", "quench"]
    pages = [
        f"THE BELL OF HOLLOWMERE\nOn day {n} the smith took up the {w}. He lifted the black-\n"
        f"smith's hammer of {w} number {n}\nand set it down by the {w}.\n{n}"
        for n, w in enumerate(words, start=1)
    ]
    raw = (
        "Copyright © 2024 Hollow Press. All rights reserved.\nISBN 978-0-00-000000-0\f"
        + "\f".join(pages)
    )
    text = clean_text(raw)
    assert "HOLLOWMERE" not in text  # running header on every page
    assert "All rights reserved" not in text and "ISBN" not in text
    assert "blacksmith's hammer" in text  # hyphenation across lines joined
    assert "\n1\n" not in text and not text.rstrip().endswith("4")  # page numbers
    # a paragraph running over a page break is one paragraph
    assert "number 1 and set it down by the anvil." in text


def test_gutenberg_header_and_footer_are_dropped() -> None:
    raw = "Licence blah\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nChapter 1\n\nStory.\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nMore licence"
    chapters = split_chapters(clean_text(raw), source="x.txt")
    assert [(c.title, c.text) for c in chapters] == [("Chapter 1", "Story.")]


def test_chapter_headings_and_offsets() -> None:
    text = clean_text(
        "Front matter line.\n\nCHAPTER IV\n\nFirst.\n\nII.\n\nSecond.\n\n# The End\n\nLast."
    )
    chapters = split_chapters(text, source="b.md")
    assert [c.title for c in chapters] == ["(opening)", "CHAPTER IV", "II.", "The End"]
    for c in chapters:  # provenance: the offset points at the chapter's text
        assert text[c.offset : c.offset + len(c.text)] == c.text


def test_txt_and_md(tmp_path: Path) -> None:
    body = "\n\n".join(f"# {t}\n\n" + "\n\n".join(ps) for t, ps in CHAPTERS)
    for name in ("book.txt", "book.md"):
        (tmp_path / name).write_text(body)
        _check(ingest_file(tmp_path / name))


def test_cp1252_text_is_read(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_bytes("Chapter 1\n\n\x93Iron,\x94 said Bram.".encode("latin-1"))
    assert "“Iron,” said Bram." in ingest_file(tmp_path / "old.txt")[0].text


def test_docx(tmp_path: Path) -> None:
    import docx  # the training extra installs python-docx

    doc = docx.Document()
    for title, paras in CHAPTERS:
        doc.add_heading(title, level=1)
        for p in paras:
            doc.add_paragraph(p)
    doc.save(tmp_path / "book.docx")
    _check(ingest_file(tmp_path / "book.docx"))


def test_pdf(tmp_path: Path) -> None:
    import pypdf  # noqa: F401 - the reader under test
    from reportlab.lib import pagesizes
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story = []
    for title, paras in CHAPTERS:
        story.append(Paragraph(title, styles["Heading1"]))
        story += [Paragraph(p.replace("&", "&amp;"), styles["BodyText"]) for p in paras]
        story.append(PageBreak())

    def header(canvas, doc) -> None:  # running header and page number on every page
        canvas.drawString(72, 800, "HOLLOWMERE TALES")
        canvas.drawString(300, 30, str(doc.page))

    SimpleDocTemplate(str(tmp_path / "book.pdf"), pagesize=pagesizes.A4).build(
        story, onFirstPage=header, onLaterPages=header
    )
    chapters = ingest_file(tmp_path / "book.pdf")
    _check(chapters)
    assert all("HOLLOWMERE TALES" not in c.text for c in chapters)
    assert not any(c.text.strip().isdigit() for c in chapters)


def test_epub(tmp_path: Path) -> None:
    import ebooklib  # noqa: F401 - the reader under test
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("hollowmere-test")
    book.set_title("Hollowmere")
    book.set_language("en")
    items = []
    for i, (title, paras) in enumerate(CHAPTERS):
        item = epub.EpubHtml(title=title, file_name=f"c{i}.xhtml", lang="en")
        item.content = f"<h1>{title}</h1>" + "".join(f"<p>{p}</p>" for p in paras)
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = items
    epub.write_epub(str(tmp_path / "book.epub"), book)
    _check(ingest_file(tmp_path / "book.epub"))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "the file is empty"),
        ("blank.md", b"\n\n   \n", "no text"),
        ("bad.docx", b"this is not a zip", "not a readable .docx"),
        ("bad.pdf", b"%PDF-1.4 garbage", "not a readable .pdf"),
        ("bad.epub", b"PK\x03\x04 nope", "not a readable .epub"),
        ("book.odt", b"whatever", "unsupported file type '.odt'"),
        ("binary.txt", b"\x00\x01\x02\xff\xfe" * 10, "binary data"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as err:
        ingest_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        ingest_file(tmp_path / "nope.txt")


def test_a_wrapped_gutenberg_start_marker_leaves_nothing_behind() -> None:
    raw = (
        "The Project Gutenberg eBook of The Adventures of Sherlock Holmes\n\n"
        "This ebook is for the use of anyone anywhere.\n\n"
        "*** START OF THE PROJECT GUTENBERG EBOOK THE ADVENTURES OF SHERLOCK\n"
        "HOLMES ***\n\nChapter 1\n\nStory.\n\n"
        "*** END OF THE PROJECT\nGUTENBERG EBOOK X ***\nSection 1. General Terms of Use"
    )
    report: dict = {}
    text = clean_text(raw, report)
    assert "HOLMES ***" not in text and "Terms of Use" not in text and "anywhere" not in text
    assert [(c.title, c.text) for c in split_chapters(text, source="x")] == [
        ("Chapter 1", "Story.")
    ]
    assert report["gutenberg"]["header_chars"] > 100 and report["gutenberg"]["licence_chars"] > 30
    assert report["paragraphs"] == 1 and report["headings"] == 1


def test_a_wrapped_line_never_becomes_a_heading() -> None:
    raw = "Chapter 1\n\n“You see,” said\nI. “It is simple.”\n\nHe nodded, as men of\nII. rank do."
    chapters = split_chapters(clean_text(raw), source="x")
    assert [c.title for c in chapters] == ["Chapter 1"]
    assert "said I. “It is simple.”" in chapters[0].text


def test_story_titles_in_a_collection_become_chapters() -> None:
    raw = (
        "ADVENTURE I. A SCANDAL IN BOHEMIA\n\nI.\n\nTo Sherlock Holmes she is always the woman.\n\n"
        "II.\n\nAt three o’clock precisely I was at Baker Street.\n\n"
        "ADVENTURE II. THE RED-HEADED LEAGUE\n\nI had called upon my friend.\n\n"
        "THE FIVE ORANGE PIPS\n\nWhen I glance over my notes."
    )
    chapters = split_chapters(clean_text(raw), source="x")
    assert [c.title for c in chapters] == [
        "ADVENTURE I. A SCANDAL IN BOHEMIA, I.",
        "ADVENTURE I. A SCANDAL IN BOHEMIA, II.",
        "ADVENTURE II. THE RED-HEADED LEAGUE",
        "THE FIVE ORANGE PIPS",
    ]


def test_a_heading_keeps_its_subtitle() -> None:
    raw = "Chapter I\nThe Science of Deduction\n\n\nSherlock Holmes took his bottle."
    (chapter,) = split_chapters(clean_text(raw), source="x")
    assert chapter.title == "Chapter I The Science of Deduction"
    assert chapter.text == "Sherlock Holmes took his bottle."


def test_cleaning_reports_page_furniture(tmp_path: Path) -> None:
    words = ["anvil", "bellows", "tongs", "quench"]
    pages = [f"MY BOOK\nThe smith took up the {w} again.\n{n}" for n, w in enumerate(words, 1)]
    report: dict = {}
    clean_text("\f".join(pages), report)
    assert report["page_numbers"] == 4
    assert report["running_headers"] == {"MY BOOK": 4}
