"""A character's replies through the daemon use its own adapter, exactly.

A small real LoRA is trained on the real base model, stored where the daemon looks
for adapters, and referenced by a character file. The daemon's greedy reply must equal
a fresh `PeftModel` load's for the same prompt, and differ from the base model's.
"""

from __future__ import annotations

import pytest

from personae.daemon.characters import AdapterRef, GenerationParams, default_cast_dir, load_cast
from personae.daemon.engines.base import ChatMessage
from personae.daemon.service import Engines, Service
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeEmbedder, FakeSTT, FakeTTS, FakeVAD
from personae.daemon.testing.harness import running
from personae.daemon.testing.tiny_adapter import train_tiny_adapter
from personae.sdk import protocol as p

pytestmark = pytest.mark.models

ADAPTER_LINE = "Hammer and tongs, friend. Hammer and tongs."
GREEDY = GenerationParams(temperature=0.0, max_tokens=24, repetition_penalty=1.0)


@pytest.fixture(scope="module")
def base_dir(settings):
    from personae.daemon.models.smollm2 import base_model_dir

    return base_model_dir(settings)


@pytest.fixture(scope="module")
def store(tmp_path_factory, base_dir):
    root = tmp_path_factory.mktemp("adapters")
    train_tiny_adapter(base_dir, root / "bram-voice" / "v1", text=ADAPTER_LINE, steps=10)
    return root


@pytest.fixture(scope="module")
def service(store, settings):
    from personae.daemon.engines.llm_transformers import TransformersLLM

    cast = load_cast([default_cast_dir()])
    cast["bram"] = cast["bram"].model_copy(
        update={"adapter": AdapterRef(name="bram-voice", version="v1"), "generation": GREEDY}
    )
    cast["mara"] = cast["mara"].model_copy(update={"generation": GREEDY, "adapter": None})
    test_settings = Settings(adapters_dir=store, audio_lead_ms=0, cache_dir=settings.cache_dir)
    tts = FakeTTS()
    engines = Engines(
        vad=FakeVAD(),
        stt=FakeSTT(),
        embedder=FakeEmbedder(),
        llm=TransformersLLM.from_settings(test_settings),
        tts={"piper": tts, "espeak": tts, "kokoro": tts},
    )
    svc = Service.create(test_settings, engines=engines, cast=cast)
    # record what the daemon actually asks the model, to replay it on a fresh load
    llm = engines.llm
    generate = llm.generate
    llm.requests = []

    def recording(request, cancel):
        llm.requests.append(request)
        return generate(request, cancel)

    llm.generate = recording
    yield svc
    svc.close()


def reference_reply(base_dir, adapter_dir, messages: list[ChatMessage], budget: int) -> str:
    """Greedy decoding with a fresh PeftModel (or the plain base when adapter_dir is None),
    over the token budget the engine was given (max_tokens and the finishing grace)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    chat = [{"role": m.role, "content": m.content} for m in messages]
    ids = tok.apply_chat_template(
        chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=budget, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def same_greedy_tokens(reply: str, reference: str) -> bool:
    """The daemon's reply is the reference's text, ended at a sentence by finishing.py
    (which only ever cuts, or marks a trailing-off fragment with an unspoken "…")."""
    said = norm(reply).removesuffix("…").rstrip()
    return bool(said) and norm(reference).startswith(said)


def norm(text: str) -> str:
    return " ".join(text.split())


async def ask(service, character: str, text: str) -> str:
    async with running(service) as h:
        h.send(p.ConversationItemCreate(item=p.Item(content=[p.ContentPart(text=text)])))
        h.send(p.ResponseCreate(response=p.ResponseOptions(character=character)))
        done = await h.wait_type("response.done", timeout=120)
    assert done.response.status == "completed", done.response
    return done.response.output_text


async def test_daemon_reply_with_adapter_equals_fresh_peft_load_and_differs_from_base(
    service, store, base_dir
) -> None:
    question = "Who are you?"
    with_adapter = await ask(service, "bram", question)
    request = service.engines.llm.requests[-1]
    messages = list(request.messages)
    assert request.adapter == "bram-voice@v1"
    assert messages[-1].content == question and "You are Bram." in messages[0].content
    budget = request.params.max_tokens
    expected = reference_reply(base_dir, store / "bram-voice" / "v1", messages, budget)
    base = reference_reply(base_dir, None, messages, budget)

    assert same_greedy_tokens(with_adapter, expected)
    assert not same_greedy_tokens(with_adapter, base)
    assert "hammer" in with_adapter.lower()  # the adapter's training shows


async def test_characters_without_adapter_speak_with_the_base_model(service, base_dir) -> None:
    question = "Who are you?"
    reply = await ask(service, "mara", question)
    request = service.engines.llm.requests[-1]
    assert request.adapter is None
    expected = reference_reply(base_dir, None, list(request.messages), request.params.max_tokens)
    assert same_greedy_tokens(reply, expected)
