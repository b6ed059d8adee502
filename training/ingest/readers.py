"""One reader per file kind. Each returns plain text in a common shape:

- paragraphs separated by a blank line (hard-wrapped lines are re-flowed later),
- headings as Markdown `# Title` lines,
- pages (PDF) separated by a form feed, so running headers and page numbers can be
  recognised per page.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from personae.training.errors import SourceError
from personae.training.ingest.pdf_layout import layout_page


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older e-texts are often cp1252; a file that is not text at all fails the check.
        if b"\x00" in data[:4096]:
            raise SourceError(f"{path}: binary data, not a text file") from None
        return data.decode("cp1252", errors="replace")


def _read_docx(path: Path) -> str:
    try:
        import docx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SourceError(
            f"{path}: reading .docx needs python-docx (pip install 'personae[training]')"
        ) from exc
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable .docx file ({exc})") from exc
    out = []
    for p in document.paragraphs:
        text = p.text.strip()
        if not text:
            continue
        style = (p.style.name if p.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            out.append(f"# {text}")
        else:
            out.append(text)
    return "\n\n".join(out)


def _read_pdf(path: Path) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as exc:  # pragma: no cover
        raise SourceError(
            f"{path}: reading .pdf needs pypdf (pip install 'personae[training]')"
        ) from exc
    try:
        reader = PdfReader(str(path))
        pages = []
        for page in reader.pages:
            laid = layout_page(page)
            pages.append(
                laid if laid is not None else _paragraphs_from_lines(page.extract_text() or "")
            )
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise SourceError(f"{path}: not a readable .pdf file ({exc})") from exc
    return "\f".join(pages)


def _paragraphs_from_lines(page: str) -> str:
    """PDF text has line breaks but no paragraph marks: a short line ends a paragraph."""
    lines = [ln.rstrip() for ln in page.splitlines()]
    widths = sorted(len(ln) for ln in lines if ln.strip())
    if not widths:
        return ""
    full = widths[int(len(widths) * 0.9) - 1 if len(widths) > 1 else 0]
    out: list[str] = []
    for ln in lines:
        out.append(ln)
        if ln.strip() and len(ln) < 0.75 * full and re.search(r"[.!?:\"”’'—]$", ln.strip()):
            out.append("")
    return "\n".join(out)


class _HTMLText(HTMLParser):
    BLOCK: ClassVar[set[str]] = {"p", "div", "br", "li", "blockquote", "section", "tr"}
    HEAD: ClassVar[set[str]] = {"h1", "h2", "h3"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in self.HEAD:
            self.parts.append("\n\n# ")
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.HEAD or tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    parser = _HTMLText()
    parser.feed(markup)
    text = html.unescape("".join(parser.parts))
    text = re.sub(r"# \s+", "# ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _read_epub(path: Path) -> str:
    try:
        import ebooklib
        from ebooklib import epub
    except ImportError as exc:  # pragma: no cover
        raise SourceError(
            f"{path}: reading .epub needs ebooklib (pip install 'personae[training]')"
        ) from exc
    try:
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, epub.EpubException) as exc:
        raise SourceError(f"{path}: not a readable .epub file ({exc})") from exc
    by_id = {item.get_id(): item for item in book.get_items()}
    chunks = []
    for entry in book.spine:
        item = by_id.get(entry[0] if isinstance(entry, tuple) else entry)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        chunks.append(html_to_text(item.get_content().decode("utf-8", errors="replace")))
    return "\n\n".join(c for c in chunks if c)


def _read_scenes_text(path: Path) -> str:
    from personae.training.ingest.scenes import read_scenes, scenes_to_text

    return scenes_to_text(read_scenes(path))


#: files whose speakers are written in the text; the ingest stage keeps them as scenes
#: (training/ingest/scenes.py) instead of chapters for speaker attribution
SCENE_SUFFIXES = (".script", ".yarn")

READERS: dict[str, Callable[[Path], str]] = {
    ".txt": _read_text,
    ".md": _read_text,
    ".markdown": _read_text,
    ".docx": _read_docx,
    ".pdf": _read_pdf,
    ".epub": _read_epub,
    ".script": _read_scenes_text,
    ".yarn": _read_scenes_text,
}
SUPPORTED = tuple(READERS)


def read_source(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: source file not found")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; supported: {', '.join(SUPPORTED)}"
        )
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")
    text = reader(path)
    if not text.strip():
        raise SourceError(f"{path}: no text found in the file")
    return text
