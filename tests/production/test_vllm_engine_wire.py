"""The vllm engine's protocol handling against a personae app on fake engines.

Fast (no model): a real uvicorn on 127.0.0.1 serves personae's OpenAI API over a
FakeLLM, and the engine talks to it over real sockets. What the model says is
tests/production/test_vllm_engine.py's business; here: what goes on the wire, path
mapping, re-registration after the server forgot an adapter, start-up refusals,
and cancel while the server is silent.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from personae.daemon.app import create_app
from personae.daemon.characters import GenerationParams
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.engines.llm_openai import OpenAIServerLLM, model_key
from personae.daemon.errors import ConfigError, EngineError
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service, served
from personae.daemon.testing.launcher import free_port

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello?")]


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for root in (ours, theirs):
        (root / "voice" / "v1").mkdir(parents=True)
        (root / "voice" / "v1" / "adapter_config.json").write_text(
            '{"base_model_name_or_path": "/models/smollm2-135m-instruct"}'
        )
    return ours, theirs


@pytest.fixture
def remote_llm() -> FakeLLM:
    return FakeLLM(reply=lambda req: "Short and sweet.")


@pytest.fixture
def server(tmp_path: Path, stores, remote_llm):
    svc = fake_service(
        llm=remote_llm,
        adapters_dir=stores[1],
        database_url=f"sqlite:///{tmp_path / 'remote.db'}",
        keys_file=tmp_path / "keys.json",
    )
    with served(create_app(svc.settings, service=svc)) as address:
        yield f"http://{address}"
    svc.close()


@pytest.fixture
def engine(server, stores):
    llm = OpenAIServerLLM(
        url=server, adapters_dir=stores[0], remote_adapters_dir=str(stores[1]), retries=1
    )
    yield llm
    llm.close()


def test_model_names_compare_by_their_last_part() -> None:
    assert model_key("HuggingFaceTB/SmolLM2-135M-Instruct") == model_key(
        "/root/.cache/personae/smollm2-135m-instruct/"
    )
    assert model_key("Qwen/Qwen2.5-0.5B") != model_key("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_requests_carry_the_adapter_and_the_parameters(engine, remote_llm, stores) -> None:
    engine.load_adapter("voice@v1", stores[0] / "voice" / "v1")
    # registered under the server's own path for the folder
    assert remote_llm.adapters == {"voice@v1": str((stores[1] / "voice" / "v1").resolve())}
    params = GenerationParams(
        temperature=0.3, top_p=0.8, max_tokens=9, stop=("###",), repetition_penalty=1.2
    )
    text = "".join(
        engine.generate(GenerationRequest(MESSAGES, params, "voice@v1", seed=7), threading.Event())
    )
    assert text == "Short and sweet."
    sent = remote_llm.requests[-1]
    assert sent.adapter == "voice@v1" and sent.seed == 7
    assert [(m.role, m.content) for m in sent.messages] == [
        ("system", "Be brief."),
        ("user", "Hello?"),
    ]
    assert sent.params == params
    engine.warmup()  # one token from the base
    assert remote_llm.requests[-1].params.max_tokens == 1
    "".join(engine.generate(GenerationRequest(MESSAGES, params), threading.Event()))
    assert remote_llm.requests[-1].adapter is None  # the base model


def test_an_adapter_the_server_forgot_is_registered_again(engine, server, remote_llm, stores):
    engine.load_adapter("voice@v1", stores[0] / "voice" / "v1")
    # as after a restart: the server no longer knows it
    httpx.post(
        f"{server}/v1/unload_lora_adapter", json={"lora_name": "voice@v1"}
    ).raise_for_status()
    assert remote_llm.adapters == {}
    params = GenerationParams(temperature=0.0, max_tokens=5)
    text = "".join(
        engine.generate(GenerationRequest(MESSAGES, params, "voice@v1"), threading.Event())
    )
    assert text == "Short and sweet."
    assert "voice@v1" in remote_llm.adapters


def test_start_up_refusals(server, stores, tmp_path) -> None:
    with pytest.raises(ConfigError, match="serves HuggingFaceTB/SmolLM2-135M-Instruct, not "):
        OpenAIServerLLM(url=server, model="mistralai/Mistral-7B-Instruct-v0.3")
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError, match="did not answer within 0 s"):
        OpenAIServerLLM(url=nobody, startup_wait_s=0)
    engine = OpenAIServerLLM(url=server, adapters_dir=stores[0])
    try:
        # the folder exists here but not where the server looks (no path mapping)
        with pytest.raises(ConfigError, match=r"refused adapter 'voice@v1'.*outside the adapter"):
            engine.load_adapter("voice@v1", stores[0] / "voice" / "v1")
        with pytest.raises(EngineError, match="not loaded"):
            list(
                engine.generate(
                    GenerationRequest(MESSAGES, GenerationParams(), "voice@v1"), threading.Event()
                )
            )
    finally:
        engine.close()


def test_cancel_closes_a_silent_stream_at_once(engine, remote_llm) -> None:
    remote_llm.stall_s = 20  # the server says nothing for 20 s
    stopped = threading.Event()
    generate = remote_llm.generate

    def watched(request, cancel):
        try:
            yield from generate(request, cancel)
        finally:
            if cancel.is_set():
                stopped.set()

    remote_llm.generate = watched
    cancel = threading.Event()
    done = threading.Event()

    def consume() -> None:
        list(engine.generate(GenerationRequest(MESSAGES, GenerationParams()), cancel))
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.5)
    assert not done.is_set()
    cancel.set()
    assert done.wait(2), "generate() still blocked after cancel"  # not the 20 s stall
    # and the server noticed the closed stream and stopped generating
    assert stopped.wait(5)


def test_a_silent_server_times_out_with_a_retryable_error(server, remote_llm) -> None:
    remote_llm.stall_s = 10
    engine = OpenAIServerLLM(url=server, read_timeout_s=0.5, retries=1)
    try:
        # each attempt gave up at the read timeout, not at the 10 s the server was silent
        with pytest.raises(EngineError, match="unavailable after 2 attempts: ReadTimeout") as exc:
            list(
                engine.generate(GenerationRequest(MESSAGES, GenerationParams()), threading.Event())
            )
        assert exc.value.retryable
        assert len(remote_llm.requests) == 2  # tried again once
    finally:
        engine.close()
