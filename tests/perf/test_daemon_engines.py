"""The new engines chosen by name serve a character's adapter through the whole session."""

from __future__ import annotations

import shutil

import pytest

from personae.daemon.characters import AdapterRef, GenerationParams, default_cast_dir, load_cast
from personae.daemon.engines import registry
from personae.daemon.service import Engines, Service
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeEmbedder, FakeSTT, FakeTTS, FakeVAD
from personae.daemon.testing.harness import running
from personae.sdk import protocol as p

pytestmark = pytest.mark.models

GREEDY = GenerationParams(temperature=0.0, max_tokens=16, repetition_penalty=1.1)


@pytest.fixture(scope="module")
def store(tmp_path_factory, adapter_dirs):
    root = tmp_path_factory.mktemp("store")
    shutil.copytree(adapter_dirs["smith"], root / "smith-voice" / "v1")
    return root


@pytest.fixture(params=["llamacpp", "transformers-batched"])
def service(request, store, settings):
    cast = load_cast([default_cast_dir()])
    cast["bram"] = cast["bram"].model_copy(
        update={"adapter": AdapterRef(name="smith-voice", version="v1"), "generation": GREEDY}
    )
    test_settings = Settings(
        llm_engine=request.param, adapters_dir=store, audio_lead_ms=0, cache_dir=settings.cache_dir
    )
    tts = FakeTTS()
    llm = registry.create("llm", test_settings.llm_engine, test_settings)
    engines = Engines(
        vad=FakeVAD(),
        stt=FakeSTT(),
        embedder=FakeEmbedder(),
        llm=llm,
        tts={"piper": tts, "espeak": tts, "kokoro": tts},
    )
    svc = Service.create(test_settings, engines=engines, cast=cast)
    yield svc
    svc.close()
    if hasattr(llm, "close"):
        llm.close()


async def test_character_reply_wears_its_adapter(service) -> None:
    async with running(service) as h:
        h.send(p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text="Who are you?")])))
        h.send(p.ResponseCreate(response=p.ResponseOptions(character="bram")))
        done = await h.wait_type("response.done", timeout=120)
    assert done.response.status == "completed", done.response
    # bram's own system prompt shifts the words; the adapter's "Aye" opening stays
    # (the base model answers "I'm ..." here)
    assert done.response.output_text.startswith("Aye"), done.response.output_text
