"""A card (V1, V2 or V3 object) mapped onto our `Character`.

name → name              description → description     personality → personality
scenario → scenario      first_mes → greeting           mes_example → examples
system_prompt → system_prompt (macros translated)       V3 nickname → aliases
character_book → lore (keys, content; `Lorebook.from_card` keeps every option)
extensions.personae → id, speaking_style, generation, voice, adapter, aliases, actions,
triggers, goals
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from personae.daemon.characters import Character
from personae.daemon.runtime.cards.lorebook import lore_from_book
from personae.daemon.runtime.cards.png import PNG_SIGNATURE, card_from_png
from personae.daemon.runtime.cards.spec import EXTENSION, SPEC_V2, SPEC_V3, parse_card_json
from personae.daemon.runtime.cards.text import (
    Macros,
    parse_examples,
    prompt_from_card,
    prompt_to_card,
)
from personae.daemon.runtime.errors import CardError
from personae.daemon.runtime.lore import Lorebook


@dataclass(frozen=True, slots=True)
class ImportedCard:
    character: Character
    #: the full lorebook with every Card option (priority, constant, selective, ...)
    lorebook: Lorebook
    #: the card as read, verbatim: pass it back to `export_card(original=...)`
    card: dict[str, Any]
    spec: Literal["v1", "v2", "v3"]


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
        card = parse_card_json(source)
    return card_to_character(card, character_id=character_id, user_name=user_name)


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
    sub = Macros(name, user_name)
    lorebook, lore = lore_from_book(data.get("character_book"))
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
    for key in ("generation", "voice", "adapter", "actions", "triggers", "goals"):
        if ours.get(key) is not None:
            fields[key] = ours[key]
    try:
        if isinstance(template, str):
            # our own export: the stored template wins if the card's text is untouched
            probe = Character.model_validate({**fields, "system_prompt": template})
            if prompt_to_card(probe) != prompt:
                template = None
        fields["system_prompt"] = (
            template if isinstance(template, str) else prompt_from_card(prompt, user_name)
        )
        character = Character.model_validate(fields)
    except ValidationError as exc:
        raise CardError(f"card does not make a valid character: {exc}") from exc
    return ImportedCard(character, lorebook, copy.deepcopy(dict(card)), spec)


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug or "character"
