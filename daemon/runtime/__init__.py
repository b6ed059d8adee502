"""Character runtime: state, memory, lore, cards, registry and experiments.

Every store takes the shared SQLAlchemy engine from `personae.daemon.store.open_database`
and makes blocking calls: the session runs them in a worker thread.
"""

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
from personae.daemon.runtime.registry import Deployment, DeploymentWatcher, Registry, VersionInfo
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
