"""Ingest: source files (txt, md, docx, pdf, epub) to cleaned chapters with provenance."""

from personae.training.ingest.chapters import Chapter, split_chapters
from personae.training.ingest.clean import clean_text
from personae.training.ingest.readers import SUPPORTED, read_source


def ingest_file(path) -> list[Chapter]:  # type: ignore[no-untyped-def]
    """Read, clean and split one file; raises SourceError naming the file."""
    from pathlib import Path

    from personae.training.errors import SourceError

    path = Path(path)
    raw = read_source(path)
    text = clean_text(raw)
    if not text.strip():
        raise SourceError(
            f"{path}: no text left after cleaning (only boilerplate or page numbers?)"
        )
    return split_chapters(text, source=path.name)


__all__ = ["SUPPORTED", "Chapter", "clean_text", "ingest_file", "read_source", "split_chapters"]
