"""The router's embedders on the bundled all-MiniLM-L6-v2: ONNX (default) and torch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from personae.daemon.engines import registry
from personae.daemon.engines.embedder_st import SentenceTransformerEmbedder, bundled_model_dir
from personae.daemon.errors import ConfigError

BLACKSMITH = (
    "Brom, the village blacksmith. Forges swords, axes and horseshoes, mends armour, "
    "works iron and steel at the anvil all day."
)
LIBRARIAN = (
    "Elena, the keeper of the old library. Knows every book and scroll, catalogues "
    "manuscripts and helps scholars find histories and maps."
)


@pytest.fixture(scope="module", params=["onnx", "onnx float32", "sentence-transformers"])
def embedder(request, settings):
    name, _, variant = request.param.partition(" ")
    if variant == "float32":
        settings = settings.model_copy(update={"embedder_int8": False})
    return registry.create("embedder", name, settings)


def test_bundled_model_found_without_importing_its_package():
    assert (bundled_model_dir() / "modules.json").is_file()


@pytest.mark.models
def test_rows_are_normalized_float32(embedder):
    vectors = embedder.embed(["Hello there.", "Can you sharpen my sword?", ""])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, embedder.dims) == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.models
def test_smithing_question_is_closer_to_the_blacksmith(embedder):
    question, smith, librarian = embedder.embed(
        ["Could you repair the blade of my sword?", BLACKSMITH, LIBRARIAN]
    )
    to_smith, to_librarian = float(question @ smith), float(question @ librarian)
    assert to_smith > to_librarian + 0.1, (to_smith, to_librarian)


@pytest.mark.models
def test_embedding_is_deterministic(embedder):
    a = embedder.embed(["What books do you have about dragons?"])
    b = embedder.embed(["What books do you have about dragons?", "filler"])[:1]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_missing_model_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a sentence-transformers model"):
        SentenceTransformerEmbedder(model_dir=tmp_path / "nowhere")


@pytest.mark.models
def test_onnx_agrees_with_sentence_transformers(settings):
    from personae.daemon.models.embedder_onnx import MIN_COSINE, PROBES

    assert settings.embedder_engine == "onnx" and settings.embedder_int8  # the defaults
    torch_ = SentenceTransformerEmbedder.from_settings(settings)
    texts = [*PROBES, "Could you repair the blade of my sword?", BLACKSMITH, LIBRARIAN, ""]
    reference = torch_.embed(texts)
    for int8 in (True, False):
        copy = settings.model_copy(update={"embedder_int8": int8})
        onnx = registry.create("embedder", "onnx", copy)
        cosines = (onnx.embed(texts) * reference).sum(axis=1)
        assert cosines.min() >= MIN_COSINE, (int8, cosines)
        single = np.stack([onnx.embed([t])[0] for t in texts])
        assert (single * reference).sum(axis=1).min() >= MIN_COSINE, int8


@pytest.mark.models
def test_export_is_kept_and_redone_when_stale(settings, tmp_path, monkeypatch):
    from personae.daemon.models import embedder_onnx

    first = embedder_onnx.onnx_embedder_dir(settings)  # exported once per cache
    steps: list[tuple[str, float, float]] = []
    assert embedder_onnx.onnx_embedder_dir(settings, lambda *a: steps.append(a)) == first
    assert steps == []  # already there: nothing exported

    copy = settings.model_copy(update={"cache_dir": tmp_path})
    exported = []
    monkeypatch.setattr(
        embedder_onnx, "export", lambda src, out, progress: exported.append(out) or _fake(out)
    )
    target = embedder_onnx.onnx_embedder_dir(copy)
    assert len(exported) == 1 and (target / embedder_onnx.MODEL_FILE).is_file()
    embedder_onnx.onnx_embedder_dir(copy)
    assert len(exported) == 1  # reused
    marker = target / embedder_onnx.MARKER
    stale = json.loads(marker.read_text())
    stale["format"] -= 1  # made by an older personae
    marker.write_text(json.dumps(stale))
    embedder_onnx.onnx_embedder_dir(copy)
    assert len(exported) == 2  # a stale export is replaced
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary left


def _fake(out):
    (out / "model.onnx").write_bytes(b"graph")
    return {"min_cosine": 1.0}


def test_unfaithful_export_is_refused(tmp_path):
    from personae.daemon.models import embedder_onnx

    class Wrong:
        def __init__(self, **kwargs):
            pass

        def embed(self, texts):
            v = np.zeros((len(texts), 2), dtype=np.float32)
            v[:, 0] = 1.0
            return v

    class Reference(Wrong):
        def embed(self, texts):
            return super().embed(texts)[:, ::-1].copy()

    reference = Reference().embed(embedder_onnx.PROBES)
    with pytest.raises(ConfigError, match="agrees with sentence-transformers only"):
        embedder_onnx.agreement(Wrong().embed, reference, graph="model.onnx", source=tmp_path)


def test_unknown_embedder_lists_both():
    with pytest.raises(ConfigError, match="available: onnx, sentence-transformers"):
        registry.engine_class("embedder", "nope")
