"""The llama.cpp engine: converted adapters change replies as PEFT's do; streaming, stops, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from personae.daemon.adapters.gguf import converted
from personae.daemon.characters import GenerationParams
from personae.daemon.engines import registry
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.errors import EngineError
from tests.perf.conftest import SMITH

pytestmark = pytest.mark.models

GREEDY = GenerationParams(temperature=0.0, max_tokens=14, repetition_penalty=1.1)
QUESTION = [ChatMessage("user", "Who are you?")]


@pytest.fixture(scope="module")
def llama(settings, adapter_dirs, tmp_path_factory):
    from personae.daemon.engines.llm_llamacpp import LlamaCppLLM
    from personae.daemon.models.smollm2 import gguf_path

    engine = LlamaCppLLM(gguf_file=gguf_path(), lora_cache_dir=tmp_path_factory.mktemp("lora"))
    engine.load_adapter("smith@1", adapter_dirs["smith"])
    return engine


def reply(engine, adapter=None, params=GREEDY, cancel=None) -> str:
    request = GenerationRequest(messages=QUESTION, params=params, adapter=adapter)
    return "".join(engine.generate(request, cancel or threading.Event()))


def test_registered_by_name():
    from personae.daemon.engines.llm_llamacpp import LlamaCppLLM

    assert registry.engine_class("llm", "llamacpp") is LlamaCppLLM


def test_converted_adapter_changes_replies_like_peft(llama):
    # the transformers engine's reply with the same PEFT adapter is SMITH exactly
    # (tests/engines); the converted GGUF must move llama.cpp to the same words
    assert reply(llama, "smith@1").startswith(SMITH[:30])
    base = reply(llama)
    assert base and not base.startswith("Aye")
    # a base request after an adapter request is the base reply again
    assert reply(llama, "smith@1").startswith(SMITH[:30])
    assert reply(llama) == base


def test_conversion_is_cached_by_content(llama, adapter_dirs, tmp_path):
    base = llama._base
    first = converted(adapter_dirs["smith"], base, tmp_path)
    mtime = first.stat().st_mtime_ns
    assert converted(adapter_dirs["smith"], base, tmp_path) == first
    assert first.stat().st_mtime_ns == mtime
    assert converted(adapter_dirs["librarian"], base, tmp_path) != first


def test_streams_token_by_token(llama):
    request = GenerationRequest(messages=QUESTION, params=GREEDY, adapter="smith@1")
    deltas = list(llama.generate(request, threading.Event()))
    assert len(deltas) > 5
    assert "".join(deltas).startswith(SMITH[:30])


def test_stop_sequences_end_the_reply_and_are_never_yielded(llama):
    params = GREEDY.model_copy(update={"stop": ("hammer",)})
    text = reply(llama, "smith@1", params=params)
    assert text.startswith("Aye, the forge")
    assert "hammer" not in text and "ready" not in text


def test_cancel_stops_within_a_token(llama):
    cancel = threading.Event()
    params = GREEDY.model_copy(update={"max_tokens": 200})
    request = GenerationRequest(
        messages=[ChatMessage("user", "Tell me a long story.")], params=params
    )
    deltas = []
    for delta in llama.generate(request, cancel):
        deltas.append(delta)
        if len(deltas) == 3:
            cancel.set()
    assert 3 <= len(deltas) <= 4


def test_unknown_adapter_is_refused(llama):
    with pytest.raises(EngineError, match="not loaded"):
        reply(llama, "nobody@1")


def test_prompt_cache_is_reused_per_adapter_and_never_leaks_between_them(
    settings, adapter_dirs, tmp_path
):
    """One slot, so every request lands on the state the last one left."""
    from personae.daemon.engines.llm_llamacpp import LlamaCppLLM
    from personae.daemon.models.smollm2 import gguf_path

    def engine(prompt_cache: bool) -> LlamaCppLLM:
        e = LlamaCppLLM(
            gguf_file=gguf_path(),
            lora_cache_dir=tmp_path / "lora",
            parallel=1,
            prompt_cache=prompt_cache,
        )
        e.load_adapter("smith@1", adapter_dirs["smith"])
        return e

    cold = engine(False)
    expected = {a: reply(cold, a) for a in ("smith@1", None)}
    assert cold.prompt_tokens()["reused"] == 0
    del cold

    warm = engine(True)
    assert reply(warm, "smith@1") == expected["smith@1"]
    # the same prompt without the adapter: llama.cpp must drop the smith-computed KV
    before = warm.prompt_tokens()["reused"]
    assert reply(warm) == expected[None]
    assert warm.prompt_tokens()["reused"] == before
    assert reply(warm, "smith@1") == expected["smith@1"]
    # and the same adapter again: the prompt comes from the slot's cache
    before = warm.prompt_tokens()["reused"]
    reply(warm, "smith@1")
    assert warm.prompt_tokens()["reused"] - before >= 10


def test_prime_leaves_the_prompt_in_the_adapters_slot(llama):
    ahead = [
        ChatMessage("system", "You are a smith in a river town. Speak plainly and briefly."),
        ChatMessage("user", "Who are you?"),
        ChatMessage("assistant", "The smith. Mind the sparks."),
    ]
    expected = reply(llama, "smith@1")  # occupies the slot with another prompt
    llama.prime(GenerationRequest(messages=ahead, params=GREEDY, adapter="smith@1"))
    before = llama.prompt_tokens()
    later = [*ahead, ChatMessage("user", "Can you fix my sword?")]
    request = GenerationRequest(messages=later, params=GREEDY, adapter="smith@1")
    text = "".join(llama.generate(request, threading.Event()))
    after = llama.prompt_tokens()
    assert text
    # everything up to the new user turn came from the slot: only its few tokens were new
    assert after["reused"] - before["reused"] >= 30
    assert after["computed"] - before["computed"] <= 20
    assert reply(llama, "smith@1") == expected


def test_a_reply_waits_for_its_slots_prime_and_reuses_it(llama):
    ahead = [
        ChatMessage("system", "You are a smith in a river town, and proud of it. " * 8),
        ChatMessage("user", "Who are you?"),
        ChatMessage("assistant", "The smith."),
    ]
    before = llama.prompt_tokens()
    priming = threading.Thread(
        target=llama.prime, args=(GenerationRequest(ahead, GREEDY, adapter="smith@1"),)
    )
    priming.start()
    deadline = time.monotonic() + 10
    while not llama._priming and priming.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    later = [*ahead, ChatMessage("user", "Can you fix my sword?")]
    request = GenerationRequest(later, GREEDY, adapter="smith@1")
    text = "".join(llama.generate(request, threading.Event()))
    priming.join()
    after = llama.prompt_tokens()
    assert text
    # the reply ran after the prime, on its slot: it reused the ~100-token system prompt
    # (a cold slot shares no more than the template's first tokens with it)
    assert after["reused"] - before["reused"] >= 90
