"""Clients name characters by id; paths, traversal and absolute names are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from personae.daemon.adapters import adapter_roots, character_adapter
from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.characters.model import AdapterRef
from personae.daemon.errors import ConfigError
from personae.daemon.settings import Settings
from personae.sdk.framing import FrameError, decode_client

BAD_IDS = [
    "../etc/passwd",
    "/etc/passwd",
    "mara/../bram",
    "..",
    "C:\\\\x",
    "mara\\u0000",
    "",
    "Mara",
]

FIELDS = [
    '{{"type": "session.update", "session": {{"characters": ["{id}"]}}}}',
    '{{"type": "session.update", "session": {{"pinned_character": "{id}"}}}}',
    '{{"type": "response.create", "response": {{"character": "{id}"}}}}',
    '{{"type": "game.event", "name": "x", "characters": ["{id}"]}}',
    '{{"type": "npc.feedback", "character": "{id}", "score": 0}}',
    '{{"type": "conversation.item.create", "item": {{"role": "assistant", "character": "{id}",'
    ' "content": [{{"type": "output_text", "text": "hi"}}]}}}}',
]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("template", FIELDS, ids=lambda t: t.split('"')[3])
def test_character_fields_refuse_paths(template: str, bad: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_client(template.format(id=bad))
    assert info.value.code == "invalid_event"


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", "A"])
def test_adapter_references_are_ids(name: str) -> None:
    with pytest.raises(ValidationError):
        AdapterRef(name=name, version="v1")


def test_adapter_versions_cannot_escape_the_store(tmp_path: Path) -> None:
    mara = load_cast([default_cast_dir()])["mara"]
    settings = Settings(adapters_dir=tmp_path / "adapters", cache_dir=tmp_path)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "adapter_config.json").write_text("{}")
    for version in ("../../secret", str(outside)):
        ch = mara.model_copy(
            update={"adapter": AdapterRef.model_construct(name="x", version=version)}
        )
        with pytest.raises(ConfigError):
            character_adapter(adapter_roots(settings), ch)
