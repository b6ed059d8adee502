"""Character runtime: state, memory, lore, cards, registry and experiments.

Every store takes the shared SQLAlchemy engine from `personae.daemon.store.open_database`
and makes blocking calls: the session runs them in a worker thread.

Names load on first use (PEP 562), so a light module such as `lore` imports without
the database stack (the training extra evaluates with lorebooks and has no SQLAlchemy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from personae.daemon.runtime.cards import (
        ImportedCard,
        export_card,
        import_card,
        read_card_file,
        write_card_json,
        write_card_png,
        write_imported,
    )
    from personae.daemon.runtime.context import CharacterRuntime, PromptContext, event_update
    from personae.daemon.runtime.errors import (
        AdapterIntegrityError,
        CardError,
        ExperimentError,
        GateFailedError,
        NoPreviousVersionError,
        NotDeployedError,
        RegistryError,
        UnknownVersionError,
        VersionExistsError,
    )
    from personae.daemon.runtime.experiments import Experiment, Experiments, Variant, VariantSpec
    from personae.daemon.runtime.gate import Gate, GateReport, Threshold
    from personae.daemon.runtime.lore import Lorebook, LoreEntry, format_lore
    from personae.daemon.runtime.memory import MemoryStore, RecallWeights, format_memories
    from personae.daemon.runtime.registry import (
        Deployment,
        DeploymentWatcher,
        Registry,
        VersionInfo,
    )
    from personae.daemon.runtime.state import (
        EMOTIONS,
        CharacterState,
        EmotionState,
        Relationship,
        StateStore,
        StateUpdate,
        Temperament,
        appraise_text,
        modulate_voice,
    )
    from personae.daemon.runtime.turns import Turn, TurnLog

_WHERE = {
    "EMOTIONS": "personae.daemon.runtime.state",
    "AdapterIntegrityError": "personae.daemon.runtime.errors",
    "CardError": "personae.daemon.runtime.errors",
    "CharacterRuntime": "personae.daemon.runtime.context",
    "CharacterState": "personae.daemon.runtime.state",
    "Deployment": "personae.daemon.runtime.registry",
    "DeploymentWatcher": "personae.daemon.runtime.registry",
    "EmotionState": "personae.daemon.runtime.state",
    "Experiment": "personae.daemon.runtime.experiments",
    "ExperimentError": "personae.daemon.runtime.errors",
    "Experiments": "personae.daemon.runtime.experiments",
    "Gate": "personae.daemon.runtime.gate",
    "GateFailedError": "personae.daemon.runtime.errors",
    "GateReport": "personae.daemon.runtime.gate",
    "ImportedCard": "personae.daemon.runtime.cards",
    "LoreEntry": "personae.daemon.runtime.lore",
    "Lorebook": "personae.daemon.runtime.lore",
    "MemoryStore": "personae.daemon.runtime.memory",
    "NoPreviousVersionError": "personae.daemon.runtime.errors",
    "NotDeployedError": "personae.daemon.runtime.errors",
    "PromptContext": "personae.daemon.runtime.context",
    "RecallWeights": "personae.daemon.runtime.memory",
    "Registry": "personae.daemon.runtime.registry",
    "RegistryError": "personae.daemon.runtime.errors",
    "Relationship": "personae.daemon.runtime.state",
    "StateStore": "personae.daemon.runtime.state",
    "StateUpdate": "personae.daemon.runtime.state",
    "Temperament": "personae.daemon.runtime.state",
    "Threshold": "personae.daemon.runtime.gate",
    "Turn": "personae.daemon.runtime.turns",
    "TurnLog": "personae.daemon.runtime.turns",
    "UnknownVersionError": "personae.daemon.runtime.errors",
    "Variant": "personae.daemon.runtime.experiments",
    "VariantSpec": "personae.daemon.runtime.experiments",
    "VersionExistsError": "personae.daemon.runtime.errors",
    "VersionInfo": "personae.daemon.runtime.registry",
    "appraise_text": "personae.daemon.runtime.state",
    "event_update": "personae.daemon.runtime.context",
    "export_card": "personae.daemon.runtime.cards",
    "format_lore": "personae.daemon.runtime.lore",
    "format_memories": "personae.daemon.runtime.memory",
    "import_card": "personae.daemon.runtime.cards",
    "modulate_voice": "personae.daemon.runtime.state",
    "read_card_file": "personae.daemon.runtime.cards",
    "write_card_json": "personae.daemon.runtime.cards",
    "write_card_png": "personae.daemon.runtime.cards",
    "write_imported": "personae.daemon.runtime.cards",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "EMOTIONS",
    "AdapterIntegrityError",
    "CardError",
    "CharacterRuntime",
    "CharacterState",
    "Deployment",
    "DeploymentWatcher",
    "EmotionState",
    "Experiment",
    "ExperimentError",
    "Experiments",
    "Gate",
    "GateFailedError",
    "GateReport",
    "ImportedCard",
    "LoreEntry",
    "Lorebook",
    "MemoryStore",
    "NoPreviousVersionError",
    "NotDeployedError",
    "PromptContext",
    "RecallWeights",
    "Registry",
    "RegistryError",
    "Relationship",
    "StateStore",
    "StateUpdate",
    "Temperament",
    "Threshold",
    "Turn",
    "TurnLog",
    "UnknownVersionError",
    "Variant",
    "VariantSpec",
    "VersionExistsError",
    "VersionInfo",
    "appraise_text",
    "event_update",
    "export_card",
    "format_lore",
    "format_memories",
    "import_card",
    "modulate_voice",
    "read_card_file",
    "write_card_json",
    "write_card_png",
    "write_imported",
]
