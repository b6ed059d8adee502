"""What a stage's inputs hash to: the run directory records it with the stage done."""

from __future__ import annotations

import hashlib
from pathlib import Path

from personae.daemon.characters import Character


def digest(parts: list[str]) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def character_digest(c: Character) -> str:
    return hashlib.sha256(c.model_dump_json().encode()).hexdigest()
