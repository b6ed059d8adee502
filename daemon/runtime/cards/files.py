"""Card files: reading `.json`/`.png` cards, writing cards, saving an import.

Every write goes to a temporary file first, so nothing is half-written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personae.daemon.runtime.cards.png import embed_card_in_png, placeholder_png
from personae.daemon.runtime.cards.reading import ImportedCard, import_card
from personae.daemon.runtime.errors import CardError


def read_card_file(path: Path, **options: Any) -> ImportedCard:
    """Import a `.json` or `.png` card file (CardError names the file and the fault)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{path}: cannot read card: {exc.strerror or exc}") from exc
    try:
        return import_card(data, **options)
    except CardError as exc:
        raise CardError(f"{path}: {exc}") from exc


def card_json(card: Mapping[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False, indent=2)


def write_card_png(path: Path, card: Mapping[str, Any], *, image: bytes | None = None) -> None:
    """Write a PNG card: `image` (PNG bytes) or a small placeholder with the card."""
    _atomic_write(path, embed_card_in_png(image or placeholder_png(), card))


def write_card_json(path: Path, card: Mapping[str, Any]) -> None:
    _atomic_write(path, card_json(card).encode("utf-8"))


def write_imported(imported: ImportedCard, directory: Path, *, overwrite: bool = False) -> Path:
    """Save an import as a character file (`<id>.json`, loadable by `load_cast`) and the
    original card beside it (`<id>.card`, ignored by the loader). Returns the first.
    Refuses to overwrite an existing character unless asked; nothing is half-written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{imported.character.id}.json"
    sidecar = card_sidecar(target)
    if not overwrite and (target.exists() or sidecar.exists()):
        raise CardError(f"{target} already exists; pass overwrite=True to replace it")
    _atomic_write(sidecar, card_json(imported.card).encode("utf-8"))
    body = json.dumps(imported.character.model_dump(mode="json"), ensure_ascii=False, indent=2)
    _atomic_write(target, body.encode("utf-8"))
    return target


def card_sidecar(character_file: Path) -> Path:
    """Where `write_imported` keeps the original card of a character file."""
    return character_file.with_suffix(".card")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
