"""The one reader and validator of PEFT LoRA folders, on small hand-made adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from personae.daemon.adapters.files import (
    CONFIG_FILE,
    PICKLE_WEIGHTS_FILE,
    WEIGHTS_FILE,
    AdapterFileError,
    ModelLayers,
    check_integrity,
    content_digest,
    read_lora,
    swappable,
    validate,
    weights_sha256,
)
from personae.daemon.errors import ConfigError

HIDDEN, KV, RANK = 16, 8, 2
# a two-layer model's attention projections, as ModelLayers.of would list them
LAYERS = ModelLayers(
    modules=tuple(
        name
        for i in range(2)
        for name in (
            f"model.layers.{i}",
            f"model.layers.{i}.self_attn",
            *(f"model.layers.{i}.self_attn.{p}_proj" for p in "qkvo"),
        )
    ),
    linears={
        f"model.layers.{i}.self_attn.{p}_proj": (HIDDEN, KV if p in "kv" else HIDDEN)
        for i in range(2)
        for p in "qkvo"
    },
)


def lora(folder: Path, *, rank: int = RANK, key_suffix: str = "", **config) -> Path:
    """A LoRA on q_proj and v_proj of both layers, saved as PEFT saves it."""
    tensors = {}
    for i in range(2):
        for module, out in (("q_proj", HIDDEN), ("v_proj", KV)):
            key = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{key}.lora_A{key_suffix}.weight"] = torch.randn(rank, HIDDEN)
            tensors[f"{key}.lora_B{key_suffix}.weight"] = torch.randn(out, rank)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_FILE))
    settings = {"peft_type": "LORA", "r": rank, "lora_alpha": 4}
    settings["target_modules"] = ["q_proj", "v_proj"]
    (folder / CONFIG_FILE).write_text(json.dumps({**settings, **config}))
    return folder


def test_reads_pairs_by_module_in_either_framework(tmp_path):
    folder = lora(tmp_path / "a")
    pairs = read_lora(folder)
    assert sorted(pairs) == [
        f"model.layers.{i}.self_attn.{m}_proj" for i in range(2) for m in ("q", "v")
    ]
    a, b = pairs["model.layers.1.self_attn.v_proj"]
    assert tuple(a.shape) == (RANK, HIDDEN) and tuple(b.shape) == (KV, RANK)
    np_a, _ = read_lora(folder, framework="numpy")["model.layers.1.self_attn.v_proj"]
    assert (np_a == a.numpy()).all()


def test_keys_with_an_adapter_name_are_only_read_by_converters(tmp_path):
    folder = lora(tmp_path / "a", key_suffix=".default")
    with pytest.raises(AdapterFileError, match="unexpected tensor"):
        read_lora(folder)
    assert len(read_lora(folder, named_keys=True)) == 4


def test_reader_refusals_name_the_folder_and_the_problem(tmp_path):
    folder = lora(tmp_path / "a")
    (folder / WEIGHTS_FILE).rename(folder / PICKLE_WEIGHTS_FILE)
    with pytest.raises(ConfigError, match=r"missing adapter_model\.safetensors \(pickle"):
        read_lora(folder)

    half = lora(tmp_path / "half")
    tensors = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(2, 16)}
    save_file(tensors, str(half / WEIGHTS_FILE))
    with pytest.raises(AdapterFileError, match="q_proj lacks lora_A or lora_B"):
        read_lora(half)

    corrupt = lora(tmp_path / "corrupt")
    (corrupt / WEIGHTS_FILE).write_bytes(b"\0" * 64)
    with pytest.raises(AdapterFileError, match=f"{corrupt}: corrupt {WEIGHTS_FILE}"):
        read_lora(corrupt)


def test_validates_against_the_model_layers(tmp_path):
    info, pairs = validate(lora(tmp_path / "a"), LAYERS)
    assert info.shapes["model.layers.0.self_attn.v_proj"] == (RANK, HIDDEN, KV)
    assert info.ranks == [RANK] and len(pairs) == 4
    assert info.path == (tmp_path / "a").resolve()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"peft_type": "IA3"}, "not a LoRA adapter"),
        ({"use_dora": True}, "DoRA"),
        ({"target_modules": ["c_attn"]}, "target modules c_attn match no layer"),
        ({"target_modules": ["self_attn"]}, "only linear layers"),
        ({"target_modules": ["q_proj", "v_proj", "o_proj"]}, "no weights for 2 targeted layers"),
        ({"target_modules": ["q_proj"]}, "which target_modules excludes"),
    ],
)
def test_config_that_does_not_fit_is_refused(tmp_path, config, message):
    with pytest.raises(AdapterFileError, match=message):
        validate(lora(tmp_path / "a", **config), LAYERS)


def test_weights_of_another_base_or_not_finite_are_refused(tmp_path):
    other = ModelLayers(
        modules=LAYERS.modules,
        linears={n: (2 * i, 2 * o) for n, (i, o) in LAYERS.linears.items()},
    )
    with pytest.raises(AdapterFileError, match="trained for another base"):
        validate(lora(tmp_path / "a"), other)
    folder = lora(tmp_path / "nan")
    pairs = read_lora(folder)
    pairs["model.layers.0.self_attn.q_proj"][0][0, 0] = float("nan")
    tensors = {}
    for module, (la, lb) in pairs.items():
        tensors[f"base_model.model.{module}.lora_A.weight"] = la
        tensors[f"base_model.model.{module}.lora_B.weight"] = lb
    save_file(tensors, str(folder / WEIGHTS_FILE))
    with pytest.raises(AdapterFileError, match="NaN or infinite"):
        validate(folder, LAYERS)
    with pytest.raises(AdapterFileError, match="does not exist"):
        validate(tmp_path / "nowhere", LAYERS)


def test_swappable_needs_equal_shapes_and_settings(tmp_path):
    first, _ = validate(lora(tmp_path / "a"), LAYERS)
    again, _ = validate(lora(tmp_path / "b"), LAYERS)
    wider, _ = validate(lora(tmp_path / "c", rank=4), LAYERS)
    rslora, _ = validate(lora(tmp_path / "d", use_rslora=True), LAYERS)
    assert swappable(first, again)
    assert not swappable(first, wider)
    assert not swappable(first, rslora)


def test_integrity_and_hashes_without_torch_reading_tensors(tmp_path):
    folder = lora(tmp_path / "a")
    sha = weights_sha256(folder)
    assert sha == weights_sha256(folder / WEIGHTS_FILE) and len(sha) == 64
    digest = content_digest(folder, "salt")
    assert content_digest(folder, "other salt") != digest
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "lora_alpha": 8}))
    assert content_digest(folder, "salt") != digest
    assert weights_sha256(folder) == sha  # the registry hashes the weights only

    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(AdapterFileError, match="truncated"):
        check_integrity(weights)
    broken = lora(tmp_path / "b")
    (broken / CONFIG_FILE).write_text("{nope")
    with pytest.raises(AdapterFileError, match="not valid JSON"):
        weights_sha256(broken)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdapterFileError, match=r"missing adapter_config\.json"):
        content_digest(empty, "salt")
    with pytest.raises(AdapterFileError, match=r"has no adapter_model\.safetensors or"):
        weights_sha256(empty)
