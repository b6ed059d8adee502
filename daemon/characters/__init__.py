"""Characters: the file format and its loader."""

from personae.daemon.characters.loader import default_cast_dir, load_cast, load_character
from personae.daemon.characters.model import (
    AdapterRef,
    Character,
    ExampleLine,
    GenerationParams,
    LoreEntry,
    VoiceConfig,
)

__all__ = [
    "AdapterRef",
    "Character",
    "ExampleLine",
    "GenerationParams",
    "LoreEntry",
    "VoiceConfig",
    "default_cast_dir",
    "load_cast",
    "load_character",
]
