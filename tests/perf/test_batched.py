"""Continuous batching: every row's greedy reply equals the reply it gets alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from tests.perf.conftest import LIBRARIAN, SMITH

pytestmark = pytest.mark.models

QUESTIONS = ["Who are you?", "Tell me a story about a dragon and a knight.", "Hi"]


@pytest.fixture(scope="module")
def engines(base_dir, adapter_dirs):
    from personae.daemon.engines.llm_batched import BatchedTransformersLLM
    from personae.daemon.engines.llm_transformers import TransformersLLM

    single = TransformersLLM(model_dir=base_dir)
    batched = BatchedTransformersLLM(model_dir=base_dir, max_batch=8)
    for engine in (single, batched):
        engine.load_adapter("smith", adapter_dirs["smith"])
        engine.load_adapter("librarian", adapter_dirs["librarian"])
    yield single, batched
    batched.close()


def request(question: str, adapter: str | None, max_tokens: int) -> GenerationRequest:
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens, repetition_penalty=1.1)
    return GenerationRequest([ChatMessage("user", question)], params, adapter=adapter)


def run(engine, req, delay: float = 0.0) -> str:
    time.sleep(delay)
    return "".join(engine.generate(req, threading.Event()))


def test_mixed_adapter_rows_equal_their_single_runs_while_joining_and_leaving(engines):
    single, batched = engines
    # different characters, prompt lengths and reply lengths, arriving at different
    # times: rows join a running batch and leave it while others continue
    jobs = [
        (request(q, a, n), delay)
        for (q, a, n, delay) in [
            (QUESTIONS[0], "smith", 12, 0.0),
            (QUESTIONS[1], None, 10, 0.0),
            (QUESTIONS[2], "librarian", 4, 0.0),
            (QUESTIONS[0], "librarian", 12, 0.3),
            (QUESTIONS[1], "smith", 6, 0.6),
            (QUESTIONS[2], None, 8, 0.9),
        ]
    ]
    alone = [run(single, req) for req, _ in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: run(batched, *job), jobs))
    assert together == alone
    assert alone[0].startswith(SMITH[:30]) and alone[3].startswith(LIBRARIAN[:12])


def test_cancelled_row_leaves_and_the_others_finish(engines):
    single, batched = engines
    keep = request(QUESTIONS[0], "smith", 12)
    cancel = threading.Event()
    long = request(QUESTIONS[1], None, 200)

    def cancelled() -> int:
        n = 0
        for _ in batched.generate(long, cancel):
            n += 1
            if n == 2:
                cancel.set()
        return n

    with ThreadPoolExecutor(2) as pool:
        stopped = pool.submit(cancelled)
        kept = pool.submit(run, batched, keep)
        assert stopped.result() <= 3
        assert kept.result() == run(single, keep)


def test_hotswap_by_copy_equals_a_fresh_load(engines, adapter_dirs):
    single, batched = engines
    question = request(QUESTIONS[0], "live", 10)
    batched.load_adapter("live", adapter_dirs["smith"])
    try:
        batched.swap_adapter("live", adapter_dirs["librarian"])
        assert run(batched, question) == run(single, request(QUESTIONS[0], "librarian", 10))
        batched.swap_adapter("live", adapter_dirs["smith"])
        assert run(batched, question) == run(single, request(QUESTIONS[0], "smith", 10))
        assert batched.adapters["live"] == adapter_dirs["smith"].resolve()
    finally:
        batched.unload_adapter("live")
