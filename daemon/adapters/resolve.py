"""Adapter references and client paths -> folders, never outside their root.

Characters name adapters by (name, version) and API clients by a path relative to the
adapter store; both are resolved here, after following `..` and links, and refused
when the result is not strictly below its root, so a character file or a request
cannot point the daemon at arbitrary files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from personae.daemon.adapters.files import is_adapter_dir
from personae.daemon.errors import ConfigError

if TYPE_CHECKING:
    from personae.daemon.characters import Character
    from personae.daemon.settings import Settings


class AdapterPathError(ConfigError):
    """A reference or path that leads outside its root."""


class AdapterNotFoundError(ConfigError):
    """A reference or path inside its root where no adapter is."""


def adapter_roots(settings: Settings) -> tuple[Path, Path]:
    """Where characters' adapters are looked for, in order: the adapter store first (an
    adapter installed there, a retrained version, a shared volume a vLLM host also sees,
    takes precedence), then the bundled cast's."""
    from personae.daemon.characters import default_cast_dir

    return (settings.resolved_adapters_dir, default_cast_dir() / "adapters")


def inside(root: Path, relative: str | Path) -> Path:
    """`root / relative` resolved, refused unless strictly below `root`.

    `relative` may be absolute if it names a place below `root`.
    """
    if "\x00" in str(relative):
        raise AdapterPathError(f"{str(relative)!r} holds a NUL byte")
    base = root.resolve()
    path = (base / relative).resolve()
    if base not in path.parents:
        raise AdapterPathError(f"{str(relative)!r} is outside {base}")
    return path


def files_inside(root: Path, folder: Path) -> Path:
    """`folder`, refused when any file in it is a link that leads out of `root` (a
    folder inside the store whose weights are someone else's file)."""
    base = root.resolve()
    for entry in folder.rglob("*"):
        target = entry.resolve()
        if base not in target.parents:
            raise AdapterPathError(f"{entry.name!r} in {folder} leads outside {base}")
    return folder


def find_adapter(roots: Sequence[Path], name: str, version: str) -> Path | None:
    """The folder of adapter `name`/`version` in the first root that holds one."""
    for root in roots:
        path = inside(root, Path(name, version))
        if is_adapter_dir(path):
            return files_inside(root, path)
    return None


def character_adapter(roots: Sequence[Path], character: Character) -> Path:
    """The adapter folder of `character`, from the first of `roots` that holds it."""
    ref = character.adapter
    if ref is None:
        raise ConfigError(f"character {character.id!r} has no adapter")
    try:
        found = find_adapter(roots, ref.name, ref.version)
    except AdapterPathError as exc:
        raise AdapterPathError(f"adapter reference of {character.id!r} escapes: {exc}") from None
    if found is None:
        raise AdapterNotFoundError(
            f"adapter {ref.name}/{ref.version} for character {character.id!r} not found under "
            + " or ".join(str(r) for r in roots)
        )
    return found


def store_folder(store: Path, path: str) -> Path:
    """A folder of the adapter store named by a client: relative to it, or absolute inside it."""
    try:
        folder = inside(store, path)
    except AdapterPathError:
        raise AdapterPathError(
            f"lora_path {path!r} is outside the adapter store {store.resolve()}"
        ) from None
    if not folder.is_dir():
        raise AdapterNotFoundError(f"No adapter found at {path!r} in the adapter store")
    try:
        return files_inside(store, folder)
    except AdapterPathError as exc:
        raise AdapterPathError(f"lora_path {path!r}: {exc}") from None
