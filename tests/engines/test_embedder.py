"""The router's embedder on the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.fixture(scope="module")
def embedder(settings):
    return SentenceTransformerEmbedder.from_settings(settings)


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
