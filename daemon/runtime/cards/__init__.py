"""Character Card V2/V3 import and export, as JSON or embedded in a PNG.

A card (`{"spec": "chara_card_v2" | "chara_card_v3", "spec_version", "data": {...}}`,
or a flat V1 card) maps onto our `Character` (see `reading` for the field map).
Everything else (creator notes, tags, alternate greetings, V3 assets, unknown
extension keys) stays in the original card, which import returns verbatim
(`ImportedCard.card`) and export takes back (`original=`): fields the character did
not change are written exactly as they were, so import → export gives the same card.

    spec      spec names, size limit, parsing a card's JSON
    text      {{char}}/{{user}} macros, example dialogues, system prompt templates
    lorebook  character_book ↔ lore
    png       the card chunks of a PNG (read, embed, placeholder image)
    reading   card → Character (`import_card`)
    writing   Character → card (`export_card`)
    files     card files on disk, and saving an import as a character file
"""

from personae.daemon.runtime.cards.files import (
    card_sidecar,
    read_card_file,
    write_card_json,
    write_card_png,
    write_imported,
)
from personae.daemon.runtime.cards.reading import ImportedCard, import_card
from personae.daemon.runtime.cards.writing import export_card

__all__ = [
    "ImportedCard",
    "card_sidecar",
    "export_card",
    "import_card",
    "read_card_file",
    "write_card_json",
    "write_card_png",
    "write_imported",
]
