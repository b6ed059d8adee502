"""Character Card V2/V3: import, export, PNG embedding, round trips, corrupt files."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib
from pathlib import Path

import pytest

from personae.daemon.characters import AdapterRef, VoiceConfig, load_cast
from personae.daemon.runtime.cards import (
    card_sidecar,
    export_card,
    import_card,
    read_card_file,
    write_card_json,
    write_card_png,
    write_imported,
)
from personae.daemon.runtime.cards.png import (
    PNG_SIGNATURE,
    card_from_png,
    embed_card_in_png,
    placeholder_png,
)
from personae.daemon.runtime.errors import CardError

V2 = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Mara Vell",
        "description": "{{char}} is the blacksmith of Hollowmere. She owes {{user}} a favour.",
        "personality": "gruff, loyal, secretly sentimental",
        "scenario": "A rainy evening at the forge.",
        "first_mes": "*hammers* What do you want, {{user}}?",
        "mes_example": "<START>\n{{user}}: Nice sword.\n{{char}}: It'll do.\nIt's sharp.\n"
        "<START>\n<USER>: Any news?\nMara Vell: The bridge is out.",
        "creator_notes": "Keep her terse.",
        "system_prompt": "Write {{char}}'s next reply. {{original}} Never call {{user}} 'sir'.",
        "post_history_instructions": "Stay gruff.",
        "alternate_greetings": ["Back again?"],
        "character_book": {
            "name": "Hollowmere",
            "scan_depth": 4,
            "extensions": {"st_depth": 2},
            "entries": [
                {
                    "keys": ["forge"],
                    "content": "The forge was her father's.",
                    "enabled": True,
                    "insertion_order": 10,
                    "priority": 3,
                    "extensions": {"weight": 7},
                    "comment": "family",
                },
                {
                    "keys": ["bridge"],
                    "content": "The bridge collapsed last week.",
                    "enabled": False,
                    "insertion_order": 20,
                    "extensions": {},
                },
            ],
        },
        "tags": ["fantasy", "smith"],
        "creator": "someone",
        "character_version": "3",
        "extensions": {
            "talkativeness": "0.4",
            "depth_prompt": {"prompt": "x", "depth": 4},
            "some_tool": {"nested": [1, 2, {"deep": True}]},
        },
    },
}


def test_v2_import_maps_every_field() -> None:
    imp = import_card(json.dumps(V2), user_name="the traveller")
    ch = imp.character
    assert imp.spec == "v2" and ch.id == "mara-vell" and ch.name == "Mara Vell"
    assert (
        ch.description
        == "Mara Vell is the blacksmith of Hollowmere. She owes the traveller a favour."
    )
    assert ch.greeting == "*hammers* What do you want, the traveller?"
    assert [(e.user, e.character) for e in ch.examples] == [
        ("Nice sword.", "It'll do.\nIt's sharp."),
        ("Any news?", "The bridge is out."),
    ]
    # disabled entries are not lore
    assert [(e.keys, e.content) for e in ch.lore] == [(("forge",), "The forge was her father's.")]
    assert len(imp.lorebook.entries) == 2 and imp.lorebook.entries[0].priority == 3
    prompt = ch.render_system_prompt()
    assert prompt.startswith("Write Mara Vell's next reply. You are Mara Vell.")
    assert prompt.endswith("Never call the traveller 'sir'.")
    assert imp.card == V2 and imp.card is not V2


def test_unchanged_import_exports_the_identical_card() -> None:
    imp = import_card(copy.deepcopy(V2))
    assert export_card(imp.character, original=imp.card) == V2


def test_edits_are_written_and_unknown_keys_survive() -> None:
    imp = import_card(V2)
    edited = imp.character.model_copy(
        update={
            "personality": "gruff but kind",
            "voice": VoiceConfig(voice="en-us+f3", rate=1.1),
            "adapter": AdapterRef(name="mara", version="v2"),
        }
    )
    out = export_card(edited, original=imp.card)
    data = out["data"]
    assert data["personality"] == "gruff but kind"
    assert data["description"] == V2["data"]["description"]  # untouched: macros kept
    for key in ("creator_notes", "alternate_greetings", "tags", "character_book"):
        assert data[key] == V2["data"][key]
    for key, value in V2["data"]["extensions"].items():
        assert data["extensions"][key] == value
    ours = data["extensions"]["personae"]
    assert ours["voice"]["voice"] == "en-us+f3" and ours["adapter"]["version"] == "v2"
    again = import_card(out).character
    assert again == edited


def test_export_without_original_round_trips_through_import() -> None:
    ch = import_card(V2).character.model_copy(update={"speaking_style": "short, blunt"})
    for spec in ("v2", "v3"):
        card = export_card(ch, spec=spec)
        assert card["spec"] == f"chara_card_{spec}"
        back = import_card(json.loads(json.dumps(card)))
        assert back.character == ch, spec


def test_v3_and_v1_cards() -> None:
    v3 = copy.deepcopy(V2)
    v3.update(spec="chara_card_v3", spec_version="3.0")
    v3["data"].update(
        nickname="Mar",
        group_only_greetings=["All of you, out."],
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    )
    imp = import_card(v3)
    assert imp.spec == "v3" and imp.character.aliases == ("Mar",)
    assert export_card(imp.character, original=imp.card) == v3
    v1 = {
        "name": "Tobin",
        "description": "An innkeeper.",
        "first_mes": "Welcome!",
        "personality": "",
        "scenario": "",
        "mes_example": "",
    }
    imp1 = import_card(v1, character_id="tobin")
    assert (
        imp1.spec == "v1" and imp1.character.id == "tobin" and imp1.character.greeting == "Welcome!"
    )
    up = export_card(imp1.character, original=imp1.card)
    assert up["spec"] == "chara_card_v2" and up["data"]["first_mes"] == "Welcome!"


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos : pos + 4])
        out.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def test_png_cards_embed_and_read_back(tmp_path: Path) -> None:
    image = placeholder_png(8)
    png = embed_card_in_png(image, V2)
    assert card_from_png(png) == V2
    names = [body.split(b"\0")[0] for t, body in _chunks(png) if t == b"tEXt"]
    assert names == [b"chara"]
    # the image chunks are preserved byte for byte
    assert [c for c in _chunks(png) if c[0] != b"tEXt"] == _chunks(image)
    # re-embedding replaces the card instead of adding a second one
    v3 = export_card(import_card(V2).character, original=V2, spec="v3")
    png3 = embed_card_in_png(png, v3)
    names3 = sorted(body.split(b"\0")[0] for t, body in _chunks(png3) if t == b"tEXt")
    assert names3 == [b"ccv3", b"chara"]
    assert card_from_png(png3)["spec"] == "chara_card_v3"  # ccv3 preferred

    path = tmp_path / "mara.png"
    write_card_png(path, V2)
    assert read_card_file(path).card == V2
    write_card_json(tmp_path / "mara.json", V2)
    assert read_card_file(tmp_path / "mara.json").card == V2


def test_png_is_readable_by_pillow(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image", reason="Pillow cross-check only")
    path = tmp_path / "mara.png"
    write_card_png(path, V2)
    with Image.open(path) as im:
        im.load()
        assert im.size == (64, 64)
        assert json.loads(base64.b64decode(im.text["chara"])) == V2


def _with_text(keyword: bytes, payload: bytes) -> bytes:
    body = keyword + b"\0" + payload
    chunk = (
        struct.pack(">I", len(body))
        + b"tEXt"
        + body
        + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    )
    png = placeholder_png(4)
    return png[:-12] + chunk + png[-12:]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a....", "not valid JSON"),
        (PNG_SIGNATURE + b"\0\0", "truncated"),
        (placeholder_png(4)[:-20], "truncated"),
        (placeholder_png(4)[:40] + b"X" + placeholder_png(4)[41:], "bad CRC"),
        (placeholder_png(4), "no character card"),
        (_with_text(b"chara", b"!!!not base64"), "not base64"),
        (_with_text(b"chara", base64.b64encode(b"{oops")), "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (json.dumps({"spec": "chara_card_v9", "data": {}}).encode(), "unknown card spec"),
        (json.dumps({"spec": "chara_card_v2", "data": {"name": " "}}).encode(), "no name"),
        (
            json.dumps({"spec": "chara_card_v2", "data": {"name": "X", "description": 3}}).encode(),
            "must be a string",
        ),
        (
            json.dumps(
                {"spec": "chara_card_v2", "data": {"name": "X", "system_prompt": "{{char}} {"}}
            ).encode(),
            None,
        ),
        (
            json.dumps({"spec": "chara_card_v2", "data": {"name": "X", "extensions": []}}).encode(),
            "extensions",
        ),
    ],
)
def test_corrupt_cards_are_clear_errors(tmp_path: Path, data: bytes, message: str | None) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    if message is None:  # an odd but valid prompt: braces are escaped, not an error
        assert "{" in read_card_file(path).character.render_system_prompt()
        return
    with pytest.raises(CardError, match=message) as err:
        read_card_file(path)
    assert str(path) in str(err.value) and err.value.code == "invalid_card"


def test_missing_file_is_a_card_error(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="cannot read card"):
        read_card_file(tmp_path / "nope.png")


def test_write_imported_makes_a_loadable_character_and_never_clobbers(tmp_path: Path) -> None:
    imp = import_card(V2)
    target = write_imported(imp, tmp_path)
    assert target == tmp_path / "mara-vell.json"
    assert json.loads(card_sidecar(target).read_text()) == V2
    cast = load_cast([tmp_path])  # the sidecar is not mistaken for a character
    assert cast == {"mara-vell": imp.character}
    before = target.read_bytes()
    other = import_card({**V2, "data": {**V2["data"], "personality": "cheerful"}})
    with pytest.raises(CardError, match="already exists"):
        write_imported(other, tmp_path)
    assert target.read_bytes() == before
    write_imported(other, tmp_path, overwrite=True)
    assert load_cast([tmp_path])["mara-vell"].personality == "cheerful"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mara-vell.card", "mara-vell.json"]


def test_editing_lore_keeps_the_entries_lore_does_not_show() -> None:
    from personae.daemon.characters import LoreEntry

    imp = import_card(V2)
    more = (*imp.character.lore, LoreEntry(keys=("mill",), content="The mill burned."))
    out = export_card(imp.character.model_copy(update={"lore": more}), original=imp.card)
    entries = out["data"]["character_book"]["entries"]
    forge, bridge = V2["data"]["character_book"]["entries"]
    assert entries[0] == forge  # kept with its priority, comment and extensions
    assert entries[1]["keys"] == ["mill"] and entries[1]["content"] == "The mill burned."
    assert entries[2] == bridge  # disabled: not lore, but not lost
    assert out["data"]["character_book"]["extensions"] == {"st_depth": 2}
    dropped = export_card(imp.character.model_copy(update={"lore": ()}), original=imp.card)
    assert dropped["data"]["character_book"]["entries"] == [bridge]
    assert import_card(out).character.lore == more
