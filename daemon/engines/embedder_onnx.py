"""Sentence embeddings with ONNX Runtime: the sentence-transformers model, exported once.

The default embedder. The graphs (`daemon/models/embedder_onnx.py` exports them into
the cache at `personae prepare` or on first use) hold the transformer, mean pooling and
normalisation, so a call is one tokenisation and one `run`. Served by default: the
8-bit graph (weights in blocks of 32, int8 products), ~3x faster per utterance than
sentence-transformers on a small CPU; `embedder_int8 = false` serves the float32 one.
Each agrees with sentence-transformers to cosine >= 0.99 on every probe sentence,
checked before the export is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from personae.daemon.engines.base import Embedder
from personae.daemon.errors import ConfigError, missing_extra
from personae.daemon.models.embedder_onnx import INT8_FILE, MODEL_FILE, Tokens, onnx_embedder_dir

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)


class OnnxEmbedder(Embedder):
    name = "onnx"

    def __init__(
        self,
        *,
        model_dir: str | Path,
        threads: int = 0,
        batch_size: int = 32,
        graph: str = MODEL_FILE,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_extra("onnxruntime", "daemon") from None
        model_dir = Path(model_dir)
        if not (model_dir / graph).is_file():
            raise ConfigError(f"{model_dir} holds no exported embedder ({graph})")
        self._tokens = Tokens(model_dir)
        self.dims: int = self._tokens.dims
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # idle worker threads that spin steal the cores speech and the LLM need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Session.run may be called from several threads at once
        self._session = ort.InferenceSession(
            str(model_dir / graph), options, providers=["CPUExecutionProvider"]
        )
        self._batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings) -> OnnxEmbedder:
        model_dir = onnx_embedder_dir(settings)
        graph = MODEL_FILE
        if settings.embedder_int8:
            if (model_dir / INT8_FILE).is_file():
                graph = INT8_FILE
            else:  # the export could not make a faithful one; its marker says why
                log.warning("no 8-bit embedder graph in %s; the float32 one serves", model_dir)
        return cls(model_dir=model_dir, threads=settings.engine_threads, graph=graph)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1:  # a turn's utterance: no padding, no sorting
            return self._run(*self._tokens.one(texts[0]))
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        # similar lengths batched together pad little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            out[chunk] = self._run(*self._tokens.batch([texts[i] for i in chunk]))
        return out

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
        return np.ascontiguousarray(vectors, dtype=np.float32)
