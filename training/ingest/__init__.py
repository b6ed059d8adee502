"""Ingest: source files (txt, md, docx, pdf, epub) to cleaned chapters with provenance."""

from personae.training.ingest.chapters import Chapter, split_chapters
from personae.training.ingest.clean import clean_text
from personae.training.ingest.readers import SUPPORTED, read_source


def ingest_file(path, report: dict | None = None) -> list[Chapter]:  # type: ignore[no-untyped-def]
    """Read, clean and split one file; raises SourceError naming the file. `report`, when
    given, receives what cleaning removed, the paragraph count and the chapter titles."""
    from pathlib import Path

    from personae.training.errors import SourceError

    path = Path(path)
    raw = read_source(path)
    text = clean_text(raw, report)
    if not text.strip():
        raise SourceError(
            f"{path}: no text left after cleaning (only boilerplate or page numbers?)"
        )
    chapters = split_chapters(text, source=path.name)
    if report is not None:
        report["chapters"] = [c.title for c in chapters]
    return chapters


__all__ = ["SUPPORTED", "Chapter", "clean_text", "ingest_file", "read_source", "split_chapters"]
