"""train.precision: bf16 autocast only where the hardware computes bf16 natively."""

from __future__ import annotations

import pytest
import torch

from personae.training.errors import RecipeError
from personae.training.fit import _use_bf16
from personae.training.recipe import TrainConfig


@pytest.fixture
def cpu_bf16(monkeypatch):
    def set_supported(value: bool) -> None:
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: value)

    return set_supported


def test_auto_follows_the_cpu(cpu_bf16):
    cpu_bf16(True)
    assert _use_bf16("auto", cuda=False, quantization="none") is True
    cpu_bf16(False)  # emulated bf16 is slower than fp32: stay in fp32
    assert _use_bf16("auto", cuda=False, quantization="none") is False


def test_fp32_is_always_fp32(cpu_bf16):
    cpu_bf16(True)
    assert _use_bf16("fp32", cuda=False, quantization="none") is False


def test_bf16_on_a_cpu_without_it_is_refused_by_name(cpu_bf16):
    cpu_bf16(False)
    with pytest.raises(RecipeError, match="AVX512-BF16"):
        _use_bf16("bf16", cuda=False, quantization="none")


def test_precision_is_a_checked_recipe_field():
    assert TrainConfig().precision == "auto"
    with pytest.raises(ValueError):
        TrainConfig(precision="fp8")
