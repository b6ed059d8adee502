"""Where the transformers engines run: device and weight type (`llm_device`, `llm_dtype`).

The CPU cases run everywhere; the CUDA case runs on the lent GPU machine only.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.engines.transformers_model import placement
from personae.daemon.errors import ConfigError
from personae.daemon.settings import Settings

torch = pytest.importorskip("torch")

GREEDY = GenerationParams(temperature=0.0, max_tokens=12, repetition_penalty=1.1)
ASKED = [(None, "Who are you?"), ("smith", "Who are you?"), ("librarian", "Who are you?")]


def reply(engine, adapter: str | None, question: str) -> str:
    request = GenerationRequest([ChatMessage("user", question)], GREEDY, adapter=adapter)
    return "".join(engine.generate(request, threading.Event()))


def test_auto_placement_and_a_clear_error_for_a_missing_gpu() -> None:
    fields = Settings.model_fields
    assert fields["llm_device"].default == "auto" and fields["llm_dtype"].default == "auto"
    assert placement("cpu", "auto") == (torch.device("cpu"), torch.float32)
    assert placement("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    with pytest.raises(ConfigError, match="llm_dtype='int3'"):
        placement("cpu", "int3")
    if torch.cuda.is_available():
        device, dtype = placement("auto", "auto")
        assert device.type == "cuda" and dtype in (torch.bfloat16, torch.float16)
    else:
        assert placement("auto", "auto") == (torch.device("cpu"), torch.float32)
        with pytest.raises(ConfigError, match="no CUDA device"):
            placement("cuda", "auto")


def engines(base_dir, adapter_dirs, **place):
    from personae.daemon.engines.llm_batched import BatchedTransformersLLM
    from personae.daemon.engines.llm_transformers import TransformersLLM

    single = TransformersLLM(model_dir=base_dir, **place)
    batched = BatchedTransformersLLM(model_dir=base_dir, max_batch=4, **place)
    for engine in (single, batched):
        for name in ("smith", "librarian"):
            engine.load_adapter(name, adapter_dirs[name])
    return single, batched


def serve_both(single, batched) -> tuple[list[str], list[str]]:
    alone = [reply(single, a, q) for a, q in ASKED]
    with ThreadPoolExecutor(len(ASKED)) as pool:  # one mixed-adapter batch
        together = list(pool.map(lambda job: reply(batched, *job), ASKED))
    return alone, together


@pytest.mark.models
def test_bfloat16_weights_serve_the_same_characters(base_dir, adapter_dirs) -> None:
    reference, _ = engines(base_dir, adapter_dirs, device="cpu", dtype="float32")
    want = [reply(reference, a, q) for a, q in ASKED]
    single, batched = engines(base_dir, adapter_dirs, device="cpu", dtype="bfloat16")
    try:
        assert next(single.model.base.parameters()).dtype == torch.bfloat16
        alone, together = serve_both(single, batched)
        # the tiny adapters are strong enough that half precision keeps every reply
        assert alone == want and together == want
        assert want[1].startswith("Aye, the forge") and want[2].startswith("Hush now")
        # a hotswap copies float32 adapter weights into the half-precision model's layers
        single.swap_adapter("smith", adapter_dirs["librarian"])
        assert reply(single, "smith", "Who are you?") == want[2]
    finally:
        batched.close()


@pytest.mark.models
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_engines_serve_mixed_adapters_like_the_cpu(base_dir, adapter_dirs) -> None:
    reference, _ = engines(base_dir, adapter_dirs, device="cpu", dtype="float32")
    want = [reply(reference, a, q) for a, q in ASKED]
    single, batched = engines(base_dir, adapter_dirs, device="cuda", dtype="float32")
    try:
        assert next(single.model.base.parameters()).device.type == "cuda"
        alone, together = serve_both(single, batched)
        assert alone == want and together == want
        # the prefix cache holds CUDA tensors: a second reply reuses the prompt
        before = single.prompt_tokens()["reused"]
        assert reply(single, "smith", "Who are you?") == want[1]
        assert single.prompt_tokens()["reused"] > before
    finally:
        batched.close()
