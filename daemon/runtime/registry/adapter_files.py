"""Finding and re-hashing a version's adapter files in the adapter store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from personae.daemon.adapters.files import AdapterFileError, weights_sha256
from personae.daemon.adapters.resolve import AdapterPathError, find_adapter, inside
from personae.daemon.runtime.errors import AdapterIntegrityError
from personae.daemon.runtime.registry.records import VersionInfo


def adapter_sha256(path: Path) -> str:
    """The adapter's weights hash; a missing or malformed file is an integrity error."""
    try:
        return weights_sha256(path)
    except AdapterFileError as exc:
        raise AdapterIntegrityError(str(exc)) from exc


class AdapterFiles:
    """Adapter folders `<name>/<version>/` under one or more roots; with no roots,
    adapter files are not checked."""

    def __init__(self, roots: Path | Sequence[Path] | None) -> None:
        # several roots are searched in order (the bundled cast's adapters, then the store)
        if roots is None:
            self._roots: tuple[Path, ...] = ()
        elif isinstance(roots, Path):
            self._roots = (roots,)
        else:
            self._roots = tuple(roots)

    def path(self, name: str, version: str) -> Path | None:
        """The folder of adapter name/version: the first root that holds it, else where
        the last root (the store) would hold it, so a missing adapter is reported there."""
        if not self._roots:
            return None
        try:
            found = find_adapter(self._roots, name, version)
            return found or inside(self._roots[-1], Path(name, version))
        except AdapterPathError:
            raise AdapterIntegrityError(
                f"adapter {name}/{version} resolves outside the adapter store"
            ) from None

    def verify(self, info: VersionInfo) -> None:
        """The adapter file exists, is well formed, and hashes to the registered sha256."""
        if info.adapter_name is None or info.adapter_sha256 is None:
            return
        path = self.path(info.adapter_name, info.adapter_version or "latest")
        if path is None:
            return
        found = adapter_sha256(path)
        if found != info.adapter_sha256:
            raise AdapterIntegrityError(
                f"adapter {info.adapter_name}/{info.adapter_version} of {info.character_id} "
                f"{info.version} changed on disk: sha256 {found[:12]}…, registered "
                f"{info.adapter_sha256[:12]}…"
            )
