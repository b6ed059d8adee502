"""The vllm engine against a second personae daemon process that speaks vLLM's API.

vLLM itself is CUDA-only, so the server here is personae's own OpenAI API on the
transformers engine (the same endpoints: /v1/models, /v1/load_lora_adapter,
/v1/chat/completions with SSE), in its own process on 127.0.0.1. The daemon under
test runs in this process with the vllm engine and fake VAD/STT/TTS/embedder, and its
adapter store is a different folder from the server's: the engine registers adapters
under the server's path for them (PERSONAE_VLLM_ADAPTERS_DIR), as with a shared volume
mounted elsewhere on a vLLM host.

Shown: registration at start-up, per-request adapter choice with greedy replies equal
to the local transformers engine's, streaming and prompt cancel, refusals at start-up
(an adapter the server refuses, an adapter for another base, a server with another
base), and the server killed mid-reply (an error event; the session goes on) and
started again (adapters registered again, replies as before).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from personae.daemon.characters import AdapterRef, GenerationParams, default_cast_dir, load_cast
from personae.daemon.engines import registry
from personae.daemon.engines.base import ChatMessage, GenerationRequest
from personae.daemon.errors import ConfigError
from personae.daemon.service import Engines, Service
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeEmbedder, FakeSTT, FakeTTS, FakeVAD
from personae.daemon.testing.harness import running
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.sdk import protocol as p

pytestmark = pytest.mark.models

GREEDY = GenerationParams(temperature=0.0, max_tokens=16, repetition_penalty=1.0)
REMOTE_CAST = """\
id = "oracle"
name = "Oracle"
description = "The server's own character: none of the daemon's characters live there."
voice = { engine = "fake" }
"""


def lora_adapter(base_dir: Path, out_dir: Path, *, seed: int) -> Path:
    """A real PEFT LoRA folder (r=8, q_proj/v_proj) with seeded random weights.

    Training (personae.daemon.testing.tiny_adapter) takes about a minute on two busy
    cores; replies only need to differ per adapter and be reproducible, which random
    weights give.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    # lora_B random too (not zeros): the adapter changes replies from the first step
    get_peft_model(model, config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def base_dir(settings):
    from personae.daemon.models.smollm2 import base_model_dir

    return base_model_dir(settings)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, base_dir):
    """(the daemon's adapter store, the same adapters where the server sees them)."""
    root = tmp_path_factory.mktemp("stores")
    ours, theirs = root / "daemon-store", root / "vllm-store"
    lora_adapter(base_dir, ours / "bram-voice" / "v1", seed=1)
    lora_adapter(base_dir, ours / "mara-voice" / "v1", seed=2)
    # refused by the server: its copy of the weights is corrupt
    shutil.copytree(ours / "bram-voice" / "v1", ours / "broken" / "v1")
    # trained for another base, as its adapter_config.json says
    shutil.copytree(ours / "bram-voice" / "v1", ours / "foreign" / "v1")
    cfg = ours / "foreign" / "v1" / "adapter_config.json"
    config = json.loads(cfg.read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-3.2-1B-Instruct"
    cfg.write_text(json.dumps(config))
    shutil.copytree(ours, theirs)
    (theirs / "broken" / "v1" / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return ours, theirs


@pytest.fixture(scope="module")
def remote(tmp_path_factory, stores):
    """A second personae daemon, serving the OpenAI API from its own process."""
    root = tmp_path_factory.mktemp("remote")
    (root / "cast").mkdir()
    (root / "cast" / "oracle.toml").write_text(REMOTE_CAST)
    daemon = Daemon(
        state_dir=root,
        # fake speech and router; the real LLM and voices
        fakes=FakeEngines(voices=False),
        settings={
            "llm_engine": "transformers",
            "adapters_dir": stores[1],
            "characters_dirs": [root / "cast"],
            "database_url": f"sqlite:///{root / 'remote.db'}",
            "keys_file": root / "keys.json",
            "threads": 1,  # two shared cores: more threads only spin
        },
        env={"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    )
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def local_llm(settings, stores):
    """The local engine, for the replies the remote one must equal."""
    from personae.daemon.engines.llm_transformers import TransformersLLM
    from personae.daemon.models.smollm2 import base_model_dir

    llm = TransformersLLM(model_dir=base_model_dir(settings), threads=1)
    llm.load_adapter("bram", stores[0] / "bram-voice" / "v1")
    llm.load_adapter("mara", stores[0] / "mara-voice" / "v1")
    return llm


def daemon_settings(tmp: Path, stores, remote: Daemon, **extra) -> Settings:
    return Settings(
        llm_engine="vllm",
        vllm_url=remote.url,
        adapters_dir=stores[0],
        vllm_adapters_dir=str(stores[1]),
        vllm_read_timeout_s=20,
        vllm_startup_wait_s=10,
        database_url=f"sqlite:///{tmp / 'daemon.db'}",
        keys_file=tmp / "keys.json",
        audio_lead_ms=0,
        **extra,
    )


def cast_with(adapters: dict[str, str]):
    """The default cast wearing only the test's adapters (its own bundled ones live
    outside the store the remote server may read, which is a test of its own)."""
    cast = {
        cid: ch.model_copy(update={"adapter": None})
        for cid, ch in load_cast([default_cast_dir()]).items()
    }
    for cid, name in adapters.items():
        cast[cid] = cast[cid].model_copy(
            update={"adapter": AdapterRef(name=name, version="v1"), "generation": GREEDY}
        )
    return cast


def service_on(settings: Settings, cast, llm) -> Service:
    tts = FakeTTS()
    engines = Engines(
        vad=FakeVAD(),
        stt=FakeSTT(),
        embedder=FakeEmbedder(),
        llm=llm,
        tts={"piper": tts, "espeak": tts, "kokoro": tts},
    )
    return Service.create(settings, engines=engines, cast=cast)


@pytest.fixture(scope="module")
def service(tmp_path_factory, stores, remote):
    settings = daemon_settings(tmp_path_factory.mktemp("daemon"), stores, remote)
    llm = registry.create("llm", "vllm", settings)
    svc = service_on(settings, cast_with({"bram": "bram-voice", "mara": "mara-voice"}), llm)
    yield svc
    svc.close()
    llm.close()


def engine_names(service: Service) -> dict[str, str]:
    """Character id -> the engine's (and the server's) name for its adapter."""
    registered = service.engines.llm.adapters
    names = {}
    for cid in ("bram", "mara"):
        ref = service.cast[cid].adapter
        assert ref is not None
        want = str(Path(service.settings.adapters_dir, ref.name, ref.version).resolve())
        names[cid] = next(n for n, a in registered.items() if str(a.local_path) == want)
    return names


def remote_models(remote: Daemon) -> dict[str, dict]:
    data = httpx.get(f"{remote.url}/v1/models", timeout=10).json()["data"]
    return {m["id"]: m for m in data}


QUESTION = [
    ChatMessage("system", "You are a blacksmith in a river town."),
    ChatMessage("user", "Who are you?"),
]


def reply(llm, adapter: str | None, messages=QUESTION, params=GREEDY) -> tuple[str, int]:
    deltas = list(llm.generate(GenerationRequest(messages, params, adapter), threading.Event()))
    return "".join(deltas), len(deltas)


def test_adapters_are_registered_at_start_up_under_the_servers_path(
    service, remote, stores
) -> None:
    names = engine_names(service)
    listed = remote_models(remote)
    assert listed["HuggingFaceTB/SmolLM2-135M-Instruct"]["parent"] is None
    for cid, adapter in (("bram", "bram-voice"), ("mara", "mara-voice")):
        entry = listed[names[cid]]
        # the server loaded its own copy: the path was mapped to its store
        assert entry["root"] == str((stores[1] / adapter / "v1").resolve())
        assert entry["parent"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_each_request_wears_its_adapter_and_matches_the_local_engine(service, local_llm) -> None:
    names = engine_names(service)
    remote_llm = service.engines.llm
    seen = {}
    for cid in ("bram", "mara", None, "bram"):  # switching per request, back and forth
        got, deltas = reply(remote_llm, names[cid] if cid else None)
        want, _ = reply(local_llm, cid)
        assert got == want, cid
        assert deltas > 1  # streamed, not one block
        seen[cid] = got
    assert len({seen["bram"], seen["mara"], seen[None]}) == 3


async def test_a_session_streams_a_reply_and_cancel_closes_the_stream(service) -> None:
    async with running(service) as h:
        h.send(p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text="Hello!")])))
        h.send(p.ResponseCreate(response=p.ResponseOptions(character="mara")))
        done = await h.wait_type("response.done", timeout=120)
        assert done.response.status == "completed", done.response
        deltas = h.of_type("response.output_text.delta")
        assert len(deltas) > 1
        assert "".join(d.delta for d in deltas).strip() == done.response.output_text

    # cancel lands at once, not when the server's reply ends
    long = GREEDY.model_copy(update={"max_tokens": 400})
    cancel = threading.Event()
    stream = service.engines.llm.generate(GenerationRequest(QUESTION, long, None), cancel)
    next(stream)
    cancel.set()
    rest = list(stream)
    assert len(rest) <= 1  # one more token at most, not the 400 asked for


def test_refusals_stop_start_up_with_the_reason(tmp_path, stores, remote) -> None:
    settings = daemon_settings(tmp_path, stores, remote)
    before = set(remote_models(remote))

    llm = registry.create("llm", "vllm", settings)
    try:
        with pytest.raises(ConfigError) as refused:
            service_on(settings, cast_with({"wren": "broken"}), llm)
        with pytest.raises(ConfigError) as foreign:
            service_on(settings, cast_with({"wren": "foreign"}), llm)
    finally:
        llm.close()
    message = str(refused.value)
    assert "wren" in message or "broken" in message
    assert "refused adapter" in message and "corrupt" in message

    assert "trained for meta-llama/Llama-3.2-1B-Instruct" in str(foreign.value)
    assert "serves HuggingFaceTB/SmolLM2-135M-Instruct" in str(foreign.value)

    other_base = daemon_settings(tmp_path, stores, remote, vllm_model="Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ConfigError) as mismatch:
        registry.create("llm", "vllm", other_base)
    assert "serves HuggingFaceTB/SmolLM2-135M-Instruct, not Qwen/Qwen2.5-0.5B-Instruct" in str(
        mismatch.value
    )
    assert set(remote_models(remote)) == before  # nothing half-registered


async def test_the_server_dies_mid_reply_and_comes_back(service, remote, local_llm) -> None:
    names = engine_names(service)
    long = GREEDY.model_copy(update={"max_tokens": 200})
    service.cast["bram"] = service.cast["bram"].model_copy(update={"generation": long})

    async with running(service) as h:

        def ask() -> int:
            mark = len(h.events)
            text = "Tell me about your forge."
            h.send(p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)])))
            h.send(p.ResponseCreate(response=p.ResponseOptions(character="bram")))
            return mark

        def error_after(mark: int) -> p.ErrorInfo:
            return next(e for e in h.events[mark:] if e.type == "error").error

        mark = ask()
        await h.wait_type("response.output_text.delta", timeout=120, after=mark)
        remote.kill()
        done = await h.wait_type("response.done", timeout=60, after=mark)
        assert done.response.status == "failed"
        error = error_after(mark)
        assert error.code == "engine_error" and error.retryable
        assert "lost mid-reply" in error.message

        # the session goes on: while the server is down a reply fails, quickly
        mark = ask()
        done = await h.wait_type("response.done", timeout=15, after=mark)
        assert done.response.status == "failed"
        error = error_after(mark)
        assert "unavailable" in error.message and error.retryable

        await asyncio.to_thread(remote.start)
        assert names["bram"] not in remote_models(remote)  # a new server knows nothing
        mark = ask()
        done = await h.wait_type("response.done", timeout=120, after=mark)
        assert done.response.status == "completed", h.events[mark:]
        assert done.response.output_text

    # registered again on the new server, and the replies are the same as before
    listed = remote_models(remote)
    assert names["bram"] in listed and names["mara"] in listed
    for cid in ("mara", "bram"):
        assert reply(service.engines.llm, names[cid])[0] == reply(local_llm, cid)[0]
