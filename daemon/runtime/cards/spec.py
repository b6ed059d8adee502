"""The card format's names and limits, and parsing a card's JSON."""

from __future__ import annotations

import json
from typing import Any, Literal

from personae.daemon.runtime.errors import CardError

SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
EXTENSION = "personae"
MAX_CARD_BYTES = 32 << 20  # V3 cards may embed assets; refuse anything absurd

Spec = Literal["v2", "v3"]


def parse_card_json(source: bytes | str) -> dict[str, Any]:
    if len(source) > MAX_CARD_BYTES:
        raise CardError(f"card is larger than {MAX_CARD_BYTES} bytes")
    try:
        card = json.loads(source)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"card is not valid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise CardError("card JSON must be an object")
    return card
