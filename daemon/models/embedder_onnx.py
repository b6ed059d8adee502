"""The sentence embedder as ONNX graphs, exported once into the cache.

Routing embeds one utterance per turn, and on one thread of a small CPU the same MiniLM
takes ~20 ms p50 through sentence-transformers (~18 ms calling the transformer directly:
torch's eager execution is most of it), ~10 ms as a float32 graph in ONNX Runtime and
~6 ms with 8-bit weights (bench/routing.py; docs/benchmarks.md). `onnx_embedder_dir` exports
the sentence-transformers folder (the bundled all-MiniLM-L6-v2 unless `embedder_model`
names another) with the mean pooling and normalisation inside the graph, then an 8-bit
copy, and keeps each only if it agrees with sentence-transformers on every probe
sentence (cosine >= MIN_COSINE). The folder is complete or absent: built in a temporary
folder, checked, then renamed into place; its marker names the files it came from, so
a changed model is exported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from personae.daemon.errors import ConfigError, missing_extra
from personae.daemon.models import Progress, install_prepared, no_progress

if TYPE_CHECKING:
    from personae.daemon.settings import Settings

log = logging.getLogger(__name__)

MARKER = "personae-onnx.json"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
#: inputs sharing one weight scale in the 8-bit graph (32: cosine >= 0.998 on the probes)
INT8_BLOCK = 32
#: bump when the exported graph or folder layout changes, so old exports are redone
FORMAT = 2
#: the export must agree with sentence-transformers at least this well on every probe
MIN_COSINE = 0.99
OPSET = 17
#: what the check embeds: short and long, named and not, padded together in one batch
PROBES = (
    "Hey Mara, where can I find an old map of the river?",
    "Where is everyone?",
    "Bram, fix this.",
    "ok",
    "Can you brew me something for a headache, and quickly please, my head is splitting?",
    "The town archivist keeps the records of the river trade, the old charters and maps.",
    "Tell me a story about the dragons and the war in the north.",
    "I need my sword sharpened before the tournament tomorrow morning.",
)


class Tokens:
    """The model's own tokenizer, truncating as sentence-transformers does."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((model_dir / "embedder.json").read_text())
        self.dims = int(meta["dims"])
        self._single = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        pad = self._single.padding or {"pad_id": 0, "pad_token": "[PAD]"}
        # the file may carry fixed-length padding (all-MiniLM-L6-v2's pads to 128):
        # a lone utterance is not padded at all, a batch only to its longest text
        self._single.no_padding()
        self._single.enable_truncation(max_length=int(meta["max_seq_length"]))
        self._batch = Tokenizer.from_str(self._single.to_str())
        self._batch.enable_padding(pad_id=pad["pad_id"], pad_token=pad["pad_token"])

    def one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        enc = self._single.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        return ids, np.ones_like(ids)

    def batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encs = self._batch.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return ids, mask


def source_model_dir(settings: Settings) -> Path:
    from personae.daemon.engines.embedder_st import bundled_model_dir

    return Path(settings.embedder_model) if settings.embedder_model else bundled_model_dir()


def onnx_embedder_dir(settings: Settings, progress: Progress = no_progress) -> Path:
    """The exported graph's folder for the configured embedder, exported on first use."""
    source = source_model_dir(settings)
    expected = _fingerprint(source)
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:10]
    target = settings.cache_dir / f"embedder-onnx-{source.name}-{digest}"
    if _is_prepared(target, expected):
        return target

    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=settings.cache_dir))
    try:
        report = export(source, tmp, progress)
        (tmp / MARKER).write_text(json.dumps({**expected, "check": report}, indent=2))
        install_prepared(tmp, target, lambda t: _is_prepared(t, expected))
        log.info("exported the embedder to %s", target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def export(source: Path, out: Path, progress: Progress = no_progress) -> dict[str, Any]:
    """Export `source` (a sentence-transformers folder) to `out`, quantise, check both.

    Returns the checks' figures. Raises ConfigError if the float32 graph disagrees with
    sentence-transformers, so an unfaithful export is never installed; an 8-bit graph
    that cannot be made or disagrees is left out, and the float32 one serves.
    """
    try:
        import onnx  # noqa: F401  # torch's exporter needs it to write the file
    except ImportError:
        raise missing_extra("onnx", "daemon") from None
    import torch
    from transformers import AutoModel

    from personae.daemon.engines.embedder_st import SentenceTransformerEmbedder

    step, steps = "export embedder to ONNX", 5
    progress(step, 0, steps)
    config = _pooling_config(source)
    model = AutoModel.from_pretrained(source, attn_implementation="eager").eval()
    reference = SentenceTransformerEmbedder(model_dir=source).embed(PROBES)
    progress(step, 1, steps)
    shutil.copy(source / "tokenizer.json", out / "tokenizer.json")
    (out / "embedder.json").write_text(
        json.dumps({"max_seq_length": config["max_seq_length"], "dims": config["dims"]})
    )
    # traced on a padded batch of two, so the attention mask is a real input of the graph
    ids, mask = Tokens(out).batch(list(PROBES[:2]))
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of one that needs onnxscript
        # (not installed); its tracer warnings are about shapes the graph keeps dynamic
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _pooled(model),
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(out / MODEL_FILE),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    progress(step, 2, steps)
    report: dict[str, Any] = {"float32": check(out, MODEL_FILE, reference, source=source)}
    progress(step, 3, steps)
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph
    from onnxruntime.capi.onnxruntime_pybind11_state import NotImplemented as OrtNotImplemented

    # an older onnxruntime (no 8-bit MatMulNBits, no onnx_ir) or a disagreeing graph
    unusable = (ImportError, TypeError, ConfigError, Fail, InvalidGraph, OrtNotImplemented)
    try:
        quantize(out)
        progress(step, 4, steps)
        report["int8"] = check(out, INT8_FILE, reference, source=source)
    except unusable as exc:
        (out / INT8_FILE).unlink(missing_ok=True)
        report["int8"] = {"skipped": str(exc)}
        log.warning("no 8-bit embedder graph, the float32 one serves: %s", exc)
    progress(step, steps, steps)
    return report


def quantize(out: Path) -> None:
    """8-bit weights in blocks of INT8_BLOCK inputs, multiplied in int8 (MatMulNBits).

    Blocks keep the weights' error small where one scale per matrix does not: dynamic
    per-channel int8 (`quantize_dynamic`) reached only cosine 0.974 on the probes.
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(out / MODEL_FILE)),
        bits=8,
        block_size=INT8_BLOCK,
        is_symmetric=True,
        accuracy_level=4,  # int8 activations too: the speed-up; float32 ones gain nothing
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out / INT8_FILE), False)


def check(exported: Path, graph: str, reference: np.ndarray, *, source: Path) -> dict[str, Any]:
    """Cosine of `graph`'s embeddings of PROBES to sentence-transformers' (`reference`)."""
    return agreement(graph_embed(exported, graph), reference, graph=graph, source=source)


def graph_embed(exported: Path, graph: str) -> Callable[[Sequence[str]], np.ndarray]:
    """Embed texts with an exported graph as the engine does: one text unpadded, several
    padded together."""
    import onnxruntime as ort

    tokens = Tokens(exported)
    session = ort.InferenceSession(str(exported / graph), providers=["CPUExecutionProvider"])

    def embed(texts: Sequence[str]) -> np.ndarray:
        ids, mask = tokens.one(texts[0]) if len(texts) == 1 else tokens.batch(list(texts))
        (vectors,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)

    return embed


def agreement(
    embed: Callable[[Sequence[str]], np.ndarray], reference: np.ndarray, *, graph: str, source: Path
) -> dict[str, Any]:
    """The worst cosine to `reference` over PROBES, padded in one batch (as profiles are
    embedded) and one at a time (as utterances are); below MIN_COSINE is refused."""
    cosines = [
        *(reference * embed(PROBES)).sum(axis=1),
        *(float(embed([p])[0] @ r) for p, r in zip(PROBES, reference, strict=True)),
    ]
    worst = float(min(cosines))
    if worst < MIN_COSINE:
        raise ConfigError(
            f"the ONNX export ({graph}) of {source} agrees with sentence-transformers only "
            f"to cosine {worst:.4f} (< {MIN_COSINE})"
        )
    return {"min_cosine": round(worst, 6), "probes": len(PROBES)}


def _pooled(model: Any) -> Any:
    """The transformer plus mean pooling and L2 normalisation, as one traceable module."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            hidden = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled()


def _pooling_config(source: Path) -> dict[str, Any]:
    """Mean pooling and the sequence limit, read from the sentence-transformers folder."""
    try:
        pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
        bert = json.loads((source / "sentence_bert_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source} is not a sentence-transformers model folder: {exc}") from exc
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ConfigError(
            f"{source} pools by {modes}; the ONNX embedder exports mean pooling only "
            "(use embedder_engine = 'sentence-transformers')"
        )
    return {
        "max_seq_length": int(bert.get("max_seq_length") or 256),
        "dims": int(pooling["word_embedding_dimension"]),
    }


def _fingerprint(source: Path) -> dict[str, Any]:
    """What the export depends on: its format and the source weights and configuration."""
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".txt"}
    )
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise ConfigError(f"embedder model folder {source} has no weights")
    return {
        "format": FORMAT,
        "opset": OPSET,
        "files": [
            [str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns] for p in files
        ],
    }


def _is_prepared(target: Path, expected: dict[str, Any]) -> bool:
    try:
        found = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    found.pop("check", None)
    return bool(found == expected) and (target / MODEL_FILE).is_file()
