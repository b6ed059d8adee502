"""What the transformers engines share: they hold a `TransformersModel`, and its
adapters are theirs. Each engine adds only how it generates (one reply at a time, or
rows in a batch)."""

from __future__ import annotations

import threading
from pathlib import Path

from personae.daemon.adapters.files import AdapterInfo
from personae.daemon.engines.base import LLMEngine
from personae.daemon.engines.transformers_model import WARMUP_REQUEST, TransformersModel


class ModelHoldingLLM(LLMEngine):
    model: TransformersModel

    def warmup(self) -> None:
        for _ in self.generate(WARMUP_REQUEST, threading.Event()):
            pass

    @property
    def adapters(self) -> dict[str, Path]:
        """Resident adapters: name -> folder their weights came from."""
        return self.model.adapters

    def load_adapter(self, name: str, path: str | Path) -> None:
        self.model.load_adapter(name, path)

    def swap_adapter(self, name: str, path: str | Path) -> None:
        self.model.swap_adapter(name, path)

    def unload_adapter(self, name: str) -> None:
        self.model.unload_adapter(name)

    def inspect_adapter(self, path: str | Path) -> AdapterInfo:
        return self.model.inspect_adapter(path)
