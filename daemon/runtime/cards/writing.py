"""Our `Character` as a Card V2 or V3 object.

Exporting with the card a character was imported from keeps everything the character
does not hold (creator notes, tags, alternate greetings, V3 assets, unknown extension
keys), and writes the fields it did not change exactly as they were.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from personae.daemon.characters import Character
from personae.daemon.runtime.cards.lorebook import merge_book
from personae.daemon.runtime.cards.reading import card_to_character
from personae.daemon.runtime.cards.spec import EXTENSION, SPEC_V2, SPEC_V3, Spec
from personae.daemon.runtime.cards.text import examples_to_card, prompt_to_card

# card data key → the Character fields it is written from
_OWNED = {
    "name": ("name",),
    "description": ("description",),
    "personality": ("personality",),
    "scenario": ("scenario",),
    "first_mes": ("greeting",),
    "mes_example": ("examples",),
    "system_prompt": ("system_prompt", "speaking_style"),
    "character_book": ("lore",),
}


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
    for key, attrs in _OWNED.items():
        if before is None or any(getattr(character, a) != getattr(before, a) for a in attrs):
            if key == "character_book":
                data[key] = merge_book(data.get(key), character)
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
    return {
        "name": character.name,
        "description": character.description,
        "personality": character.personality,
        "scenario": character.scenario,
        "first_mes": character.greeting,
        "mes_example": examples_to_card(character.examples),
        "system_prompt": prompt_to_card(character),
    }


def _personae_extension(character: Character) -> dict[str, Any]:
    dumped = character.model_dump(mode="json")
    return {
        "id": character.id,
        "speaking_style": character.speaking_style,
        "aliases": list(character.aliases),
        "generation": dumped["generation"],
        "voice": dumped["voice"],
        "adapter": dumped["adapter"],
        "system_prompt": character.system_prompt,
        # what the character does for the game (docs/characters.md)
        "actions": dumped["actions"],
        "triggers": dumped["triggers"],
        "goals": dumped["goals"],
    }
