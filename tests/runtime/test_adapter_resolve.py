"""Adapter references and client paths resolve below their root, or are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.daemon.adapters.resolve import (
    AdapterNotFoundError,
    AdapterPathError,
    adapter_roots,
    character_adapter,
    find_adapter,
    store_folder,
)
from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.characters.model import AdapterRef
from personae.daemon.errors import ConfigError
from personae.daemon.settings import Settings


def adapter(root: Path, name: str, version: str) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    return folder


def with_adapter(name: str, version: str):
    mara = load_cast([default_cast_dir()])["mara"]
    # model_construct: skip the id checks, as a hand-edited or forged file could
    ref = AdapterRef.model_construct(name=name, version=version)
    return mara.model_copy(update={"adapter": ref})


def test_the_first_root_that_holds_the_adapter_wins(tmp_path):
    store, cast = tmp_path / "store", tmp_path / "cast"
    bundled = adapter(cast, "voice", "v1")
    assert character_adapter([store, cast], with_adapter("voice", "v1")) == bundled.resolve()
    installed = adapter(store, "voice", "v1")
    assert character_adapter([store, cast], with_adapter("voice", "v1")) == installed.resolve()
    assert find_adapter([store, cast], "voice", "v2") is None
    with pytest.raises(AdapterNotFoundError, match=f"voice/v2 .* not found under {store} or"):
        character_adapter([store, cast], with_adapter("voice", "v2"))


def test_references_cannot_leave_the_roots(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    outside = adapter(tmp_path, "secret", "v1")
    for version in ("../../secret/v1", str(outside), ".."):
        with pytest.raises(AdapterPathError, match="escapes") as err:
            character_adapter([store], with_adapter("x", version))
        assert isinstance(err.value, ConfigError)


def test_client_paths_stay_inside_the_store(tmp_path):
    store = tmp_path / "store"
    inside = adapter(store, "voices", "v1")
    assert store_folder(store, "voices/v1") == inside.resolve()
    assert store_folder(store, str(inside)) == inside.resolve()  # absolute, but inside
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (store / "sneaky").symlink_to(elsewhere)
    for path in ("../elsewhere", "voices/../../elsewhere", str(elsewhere), "/etc", "sneaky", "."):
        with pytest.raises(AdapterPathError, match="outside the adapter store"):
            store_folder(store, path)
    with pytest.raises(AdapterNotFoundError, match="No adapter found at 'voices/v9'"):
        store_folder(store, "voices/v9")


def test_the_store_comes_before_the_bundled_cast(tmp_path):
    settings = Settings(adapters_dir=tmp_path / "adapters", cache_dir=tmp_path)
    store, cast = adapter_roots(settings)
    assert store == settings.resolved_adapters_dir
    assert cast == default_cast_dir() / "adapters"
    # the bundled cast's own adapters serve while the store has none of them
    mara = load_cast([default_cast_dir()])["mara"]
    assert mara.adapter is not None
    shipped = cast / "mara" / mara.adapter.version
    assert character_adapter([store, cast], mara) == shipped.resolve()
