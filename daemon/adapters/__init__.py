"""Character adapters, in one place.

- `files`: PEFT LoRA folders: file names, the reader, the validator, hashes;
- `resolve`: adapter references and client paths -> folders, never outside their root;
- `cache`: which adapters are resident in the LLM (LRU, pinned while speaking);
- `gguf`: the PEFT -> GGUF LoRA conversion for llama.cpp (imported on its own: numpy, gguf).
"""

from personae.daemon.adapters.cache import AdapterCache, CacheStats, engine_name
from personae.daemon.adapters.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterFileError,
    AdapterInfo,
    ModelLayers,
)
from personae.daemon.adapters.resolve import (
    AdapterNotFoundError,
    AdapterPathError,
    adapter_roots,
    character_adapter,
    store_folder,
)

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "AdapterCache",
    "AdapterFileError",
    "AdapterInfo",
    "AdapterNotFoundError",
    "AdapterPathError",
    "CacheStats",
    "ModelLayers",
    "adapter_roots",
    "character_adapter",
    "engine_name",
    "store_folder",
]
