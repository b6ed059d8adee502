"""Character Card V2/V3 import and export, as JSON or embedded in a PNG.

A card (`{"spec": "chara_card_v2" | "chara_card_v3", "spec_version", "data": {...}}`,
or a flat V1 card) maps onto our `Character`:

    name → name              description → description     personality → personality
    scenario → scenario      first_mes → greeting           mes_example → examples
    system_prompt → system_prompt (macros translated)       V3 nickname → aliases
    character_book → lore (keys, content; `Lorebook.from_card` keeps every option)
    extensions.personae → id, speaking_style, generation, voice, adapter, aliases

Everything else (creator notes, tags, alternate greetings, V3 assets, unknown
extension keys) stays in the original card, which import returns verbatim
(`ImportedCard.card`) and export takes back (`original=`): fields the character did
not change are written exactly as they were, so import → export gives the same card.

In text fields `{{char}}`/`<BOT>` become the character's name and `{{user}}`/`<USER>`
the player's (`user_name`). A card's system prompt becomes our template:
`{{char}}`, `{{description}}`, `{{personality}}`, `{{scenario}}` map to our fields,
`{{original}}` to our default template, other macros stay literal.

PNG cards carry the card as base64 JSON in a `tEXt` chunk named `chara` (V2) or `ccv3`
(V3; preferred when both exist). Chunks are read and written directly (CRC checked),
so every other chunk of the image is preserved byte for byte and Pillow is not needed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import os
import re
import string
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from personae.daemon.characters import Character, ExampleLine
from personae.daemon.characters import LoreEntry as CharacterLore
from personae.daemon.characters.model import DEFAULT_SYSTEM_TEMPLATE
from personae.daemon.runtime.errors import CardError
from personae.daemon.runtime.lore import Lorebook

SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
EXTENSION = "personae"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CARD_BYTES = 32 << 20  # V3 cards may embed assets; refuse anything absurd

Spec = Literal["v2", "v3"]


@dataclass(frozen=True, slots=True)
class ImportedCard:
    character: Character
    #: the full lorebook with every Card option (priority, constant, selective, ...)
    lorebook: Lorebook
    #: the card as read, verbatim: pass it back to `export_card(original=...)`
    card: dict[str, Any]
    spec: Literal["v1", "v2", "v3"]


# --- reading -------------------------------------------------------------------------


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


def import_card(
    source: bytes | str | Mapping[str, Any],
    *,
    character_id: str | None = None,
    user_name: str = "the player",
) -> ImportedCard:
    """Import a card from PNG bytes, JSON text/bytes, or an already parsed object."""
    if isinstance(source, Mapping):
        card = copy.deepcopy(dict(source))
    elif isinstance(source, bytes) and source.startswith(PNG_SIGNATURE):
        card = card_from_png(source)
    else:
        card = _parse_json(source)
    return card_to_character(card, character_id=character_id, user_name=user_name)


def card_from_png(png: bytes) -> dict[str, Any]:
    """The card embedded in a PNG (`ccv3` preferred over `chara`)."""
    found: dict[str, bytes] = {}
    for ctype, body in _png_chunks(png):
        if ctype == b"tEXt":
            keyword, sep, text = body.partition(b"\0")
            if sep and keyword.lower() in (b"chara", b"ccv3"):
                found[keyword.lower().decode()] = text
    raw = found.get("ccv3") or found.get("chara")
    if raw is None:
        raise CardError("PNG has no character card (no 'chara' or 'ccv3' tEXt chunk)")
    try:
        decoded = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise CardError(f"card chunk is not base64: {exc}") from exc
    return _parse_json(decoded)


def _parse_json(source: bytes | str) -> dict[str, Any]:
    if len(source) > MAX_CARD_BYTES:
        raise CardError(f"card is larger than {MAX_CARD_BYTES} bytes")
    try:
        card = json.loads(source)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"card is not valid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise CardError("card JSON must be an object")
    return card


def card_to_character(
    card: Mapping[str, Any], *, character_id: str | None = None, user_name: str = "the player"
) -> ImportedCard:
    spec_name = card.get("spec")
    if spec_name in (SPEC_V2, SPEC_V3):
        data = card.get("data")
        if not isinstance(data, dict):
            raise CardError(f"{spec_name} card has no 'data' object")
        spec: Literal["v1", "v2", "v3"] = "v2" if spec_name == SPEC_V2 else "v3"
    elif spec_name is None and "name" in card:
        data, spec = dict(card), "v1"
    else:
        raise CardError(
            f"unknown card spec {spec_name!r}; expected {SPEC_V2!r}, {SPEC_V3!r} or a V1 card"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CardError("card has no name")
    for key in (
        "description",
        "personality",
        "scenario",
        "first_mes",
        "mes_example",
        "system_prompt",
    ):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CardError(f"card field {key!r} must be a string")
    ext = data.get("extensions")
    ext = {} if ext is None else ext
    if not isinstance(ext, dict):
        raise CardError("card 'extensions' must be an object")
    ours = ext.get(EXTENSION)
    ours = {} if ours is None else ours
    if not isinstance(ours, dict):
        raise CardError(f"card extensions.{EXTENSION} must be an object")

    name = name.strip()
    sub = _Macros(name, user_name)
    book_raw = data.get("character_book")
    try:
        lorebook = Lorebook.from_card(book_raw) if isinstance(book_raw, dict) else Lorebook()
    except ValueError as exc:
        raise CardError(f"character_book: {exc}") from exc
    lore = tuple(
        CharacterLore(keys=e.keys, content=e.text)
        for e in lorebook.entries
        if e.enabled and e.keys and not e.use_regex and e.text
    )
    aliases = ours.get("aliases")
    if aliases is None:
        nickname = data.get("nickname")
        aliases = (
            [nickname] if isinstance(nickname, str) and nickname.strip() not in ("", name) else []
        )
    fields: dict[str, Any] = {
        "id": character_id or ours.get("id") or slugify(name),
        "name": name,
        "aliases": tuple(aliases),
        "description": sub(data.get("description") or ""),
        "personality": sub(data.get("personality") or ""),
        "speaking_style": ours.get("speaking_style", ""),
        "scenario": sub(data.get("scenario") or ""),
        "greeting": sub(data.get("first_mes") or ""),
        "examples": parse_examples(data.get("mes_example") or "", name, user_name),
        "lore": lore,
    }
    prompt = data.get("system_prompt") or ""
    template = ours.get("system_prompt")
    for key in ("generation", "voice", "adapter"):
        if ours.get(key) is not None:
            fields[key] = ours[key]
    try:
        if isinstance(template, str):
            # our own export: the stored template wins if the card's text is untouched
            probe = Character.model_validate({**fields, "system_prompt": template})
            if _prompt_to_card(probe) != prompt:
                template = None
        fields["system_prompt"] = (
            template if isinstance(template, str) else prompt_from_card(prompt, user_name)
        )
        character = Character.model_validate(fields)
    except ValidationError as exc:
        raise CardError(f"card does not make a valid character: {exc}") from exc
    return ImportedCard(character, lorebook, copy.deepcopy(dict(card)), spec)


class _Macros:
    def __init__(self, name: str, user: str) -> None:
        self._map = {"char": name, "bot": name, "user": user}
        self._re = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)

    def __call__(self, text: str) -> str:
        return self._re.sub(lambda m: self._map[(m.group(1) or m.group(2)).lower()], text).strip()


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "character"


_SPEAKER = re.compile(r"^\s*(\{\{\s*(user|char)\s*\}\}|<(USER|BOT)>)\s*:\s?", re.IGNORECASE)


def parse_examples(text: str, name: str, user_name: str) -> tuple[ExampleLine, ...]:
    """`<START>` blocks of `{{user}}: ...` / `{{char}}: ...` lines, as user/character pairs."""
    sub = _Macros(name, user_name)
    named = re.compile(rf"^\s*{re.escape(name)}\s*:\s?", re.IGNORECASE)
    pairs: list[ExampleLine] = []
    for block in re.split(r"<START>", text, flags=re.IGNORECASE):
        turns: list[list[str]] = []  # [role, text]
        for line in block.splitlines():
            m = _SPEAKER.match(line)
            role = None
            if m:
                role = "user" if (m.group(2) or m.group(3) or "").lower() == "user" else "char"
                line = line[m.end() :]
            elif named.match(line):
                role, line = "char", line[named.match(line).end() :]  # type: ignore[union-attr]
            if role:
                turns.append([role, line])
            elif turns and line.strip():
                turns[-1][1] += "\n" + line
        for a, b in itertools.pairwise(turns):
            if a[0] == "user" and b[0] == "char":
                pairs.append(ExampleLine(user=sub(a[1]), character=sub(b[1])))
    return tuple(pairs)


def prompt_from_card(prompt: str, user_name: str = "the player") -> str:
    """A card system prompt as our `str.format` template."""
    if not prompt.strip():
        return DEFAULT_SYSTEM_TEMPLATE
    fields = {
        "char": "{name}",
        "description": "{description}",
        "personality": "{personality}",
        "scenario": "{scenario}",
        "original": DEFAULT_SYSTEM_TEMPLATE,
        "user": _escape(user_name),
    }
    out = []
    pos = 0
    for m in re.finditer(r"\{\{\s*(\w+)\s*\}\}", prompt):
        out.append(_escape(prompt[pos : m.start()]))
        out.append(fields.get(m.group(1).lower(), _escape(m.group(0))))
        pos = m.end()
    out.append(_escape(prompt[pos:]))
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


# --- writing -------------------------------------------------------------------------


def export_card(
    character: Character,
    *,
    original: Mapping[str, Any] | None = None,
    spec: Spec | None = None,
    user_name: str = "the player",
) -> dict[str, Any]:
    """The character as a Card V2 or V3 object.

    With `original` (the card it was imported from), that card is the starting point:
    unknown keys and untouched fields are kept as they were. `spec` defaults to the
    original's (V1 originals become V2), else "v2".
    """
    if original is not None:
        base = card_to_character(original, user_name=user_name)
        card = copy.deepcopy(dict(original))
        if base.spec == "v1":
            card = {"spec": SPEC_V2, "spec_version": "2.0", "data": card}
        spec = spec or ("v3" if base.spec == "v3" else "v2")
        before = base.character
    else:
        spec = spec or "v2"
        card = {"spec": SPEC_V2, "spec_version": "2.0", "data": _empty_data()}
        before = None
    data: dict[str, Any] = card["data"]
    _set_spec(card, spec)
    fresh = _card_fields(character)
    owned = {
        "name": ("name",),
        "description": ("description",),
        "personality": ("personality",),
        "scenario": ("scenario",),
        "first_mes": ("greeting",),
        "mes_example": ("examples",),
        "system_prompt": ("system_prompt", "speaking_style"),
        "character_book": ("lore",),
    }
    for key, attrs in owned.items():
        if before is None or any(getattr(character, a) != getattr(before, a) for a in attrs):
            if key == "character_book":
                data[key] = _merge_book(data.get(key), character)
                if data[key] is None:
                    data.pop(key)
            else:
                data[key] = fresh[key]
    ext = data.get("extensions")
    if not isinstance(ext, dict):
        ext = data["extensions"] = {}
    ours = _personae_extension(character)
    if before is None or ours != _personae_extension(before):
        ext[EXTENSION] = ours
    if (
        spec == "v3"
        and character.aliases
        and (before is None or character.aliases != before.aliases)
    ):
        data["nickname"] = character.aliases[0]
    return card


def _empty_data() -> dict[str, Any]:
    return {
        "name": "",
        "description": "",
        "personality": "",
        "scenario": "",
        "first_mes": "",
        "mes_example": "",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": [],
        "creator": "",
        "character_version": "",
        "extensions": {},
    }


def _set_spec(card: dict[str, Any], spec: Spec) -> None:
    if spec == "v3":
        card["spec"], card["spec_version"] = SPEC_V3, "3.0"
        data = card["data"]
        data.setdefault("group_only_greetings", [])
        data.setdefault(
            "assets", [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}]
        )
    else:
        card["spec"], card["spec_version"] = SPEC_V2, "2.0"


def _card_fields(character: Character) -> dict[str, Any]:
    examples = "".join(
        f"<START>\n{{{{user}}}}: {e.user}\n{{{{char}}}}: {e.character}\n"
        for e in character.examples
    )
    return {
        "name": character.name,
        "description": character.description,
        "personality": character.personality,
        "scenario": character.scenario,
        "first_mes": character.greeting,
        "mes_example": examples,
        "system_prompt": _prompt_to_card(character),
    }


def _prompt_to_card(character: Character) -> str:
    if character.system_prompt == DEFAULT_SYSTEM_TEMPLATE:
        return ""
    macros = {
        "name": "{{char}}",
        "description": "{{description}}",
        "personality": "{{personality}}",
        "scenario": "{{scenario}}",
        "speaking_style": character.speaking_style,
    }
    out = []
    for literal, field_name, _spec, _conv in string.Formatter().parse(character.system_prompt):
        out.append(literal)
        if field_name is not None:
            out.append(macros.get(field_name, ""))
    return "".join(out)


def _merge_book(book: Any, character: Character) -> dict[str, Any] | None:
    """The card's lorebook updated to the character's lore.

    Entries that import turned into lore are kept (with all their options) when the
    character still has them, dropped when it does not; new lore becomes new entries.
    Entries import did not turn into lore (disabled, regex, keyless) stay as they were.
    """
    old = book.get("entries", []) if isinstance(book, dict) else []
    old = old if isinstance(old, list) else []
    try:
        parsed = Lorebook.from_card({"entries": old}).entries
    except ValueError:
        parsed = ()
    mapped: dict[tuple[tuple[str, ...], str], Any] = {}
    others = []
    for raw, entry in zip(old, parsed, strict=False):
        if entry.enabled and entry.keys and not entry.use_regex and entry.text:
            mapped.setdefault((entry.keys, entry.text), raw)
        else:
            others.append(raw)
    entries = []
    for i, lore in enumerate(character.lore):
        raw = mapped.get((lore.keys, lore.content))
        entries.append(
            raw
            if raw is not None
            else {
                "keys": list(lore.keys),
                "content": lore.content,
                "extensions": {},
                "enabled": True,
                "insertion_order": i,
                "id": i,
            }
        )
    entries += others
    if not entries:
        return None
    out = dict(book) if isinstance(book, dict) else {"extensions": {}}
    out["entries"] = entries
    return out


def _personae_extension(character: Character) -> dict[str, Any]:
    dumped = character.model_dump(mode="json")
    ext = {
        "id": character.id,
        "speaking_style": character.speaking_style,
        "aliases": list(character.aliases),
        "generation": dumped["generation"],
        "voice": dumped["voice"],
        "adapter": dumped["adapter"],
        "system_prompt": character.system_prompt,
    }
    return ext


def card_json(card: Mapping[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False, indent=2)


def embed_card_in_png(png: bytes, card: Mapping[str, Any]) -> bytes:
    """`png` with the card in tEXt chunks (old card chunks replaced, the rest untouched).

    A V3 card is written as `ccv3` and, for V2 readers, as `chara` with a V2 header.
    """
    chunks = [
        (t, b)
        for t, b in _png_chunks(png)
        if not (t == b"tEXt" and b.partition(b"\0")[0].lower() in (b"chara", b"ccv3"))
    ]
    new = []
    if card.get("spec") == SPEC_V3:
        new.append(_text_chunk(b"ccv3", card))
        v2 = {**card, "spec": SPEC_V2, "spec_version": "2.0"}
        new.append(_text_chunk(b"chara", v2))
    else:
        new.append(_text_chunk(b"chara", card))
    out = [PNG_SIGNATURE]
    for ctype, body in chunks:
        if ctype == b"IEND":
            out += new
        out.append(_chunk(ctype, body))
    return b"".join(out)


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


# --- PNG chunks ----------------------------------------------------------------------


def _png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    if not png.startswith(PNG_SIGNATURE):
        raise CardError("not a PNG file (bad signature)")
    chunks = []
    pos = len(PNG_SIGNATURE)
    while True:
        if pos + 8 > len(png):
            raise CardError("PNG is truncated (no IEND chunk)")
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        ctype = png[pos + 4 : pos + 8]
        end = pos + 8 + length + 4
        if end > len(png):
            raise CardError(f"PNG is truncated inside a {ctype!r} chunk")
        body = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[end - 4 : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise CardError(f"PNG is corrupt: bad CRC in a {ctype.decode('latin-1')!r} chunk")
        chunks.append((ctype, body))
        pos = end
        if ctype == b"IEND":
            return chunks


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _text_chunk(keyword: bytes, card: Mapping[str, Any]) -> bytes:
    payload = base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8"))
    return _chunk(b"tEXt", keyword + b"\0" + payload)


def placeholder_png(size: int = 64, rgb: tuple[int, int, int] = (96, 96, 112)) -> bytes:
    """A plain square PNG, for cards exported without a portrait."""
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    row = b"\0" + bytes(rgb) * size
    idat = zlib.compress(row * size, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
