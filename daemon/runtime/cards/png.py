"""Cards inside PNG files: `tEXt` chunks named `chara` (V2) or `ccv3` (V3).

Chunks are read and written directly (CRC checked), so every other chunk of the
image is preserved byte for byte and Pillow is not needed.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

from personae.daemon.runtime.cards.spec import SPEC_V2, SPEC_V3, parse_card_json
from personae.daemon.runtime.errors import CardError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CARD_CHUNKS = (b"chara", b"ccv3")


def card_from_png(png: bytes) -> dict[str, Any]:
    """The card embedded in a PNG (`ccv3` preferred over `chara`)."""
    found: dict[str, bytes] = {}
    for ctype, body in _png_chunks(png):
        if ctype == b"tEXt":
            keyword, sep, text = body.partition(b"\0")
            if sep and keyword.lower() in _CARD_CHUNKS:
                found[keyword.lower().decode()] = text
    raw = found.get("ccv3") or found.get("chara")
    if raw is None:
        raise CardError("PNG has no character card (no 'chara' or 'ccv3' tEXt chunk)")
    try:
        decoded = base64.b64decode(raw, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise CardError(f"card chunk is not base64: {exc}") from exc
    return parse_card_json(decoded)


def embed_card_in_png(png: bytes, card: Mapping[str, Any]) -> bytes:
    """`png` with the card in tEXt chunks (old card chunks replaced, the rest untouched).

    A V3 card is written as `ccv3` and, for V2 readers, as `chara` with a V2 header.
    """
    chunks = [
        (t, b)
        for t, b in _png_chunks(png)
        if not (t == b"tEXt" and b.partition(b"\0")[0].lower() in _CARD_CHUNKS)
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


def placeholder_png(size: int = 64, rgb: tuple[int, int, int] = (96, 96, 112)) -> bytes:
    """A plain square PNG, for cards exported without a portrait."""
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    row = b"\0" + bytes(rgb) * size
    idat = zlib.compress(row * size, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


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
