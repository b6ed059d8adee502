"""Chat completions through the `openai` SDK: usage, a reply cut by max_tokens,
models.retrieve. Fake engines count words as tokens; the last test uses the real
engines (SmolLM2's tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from personae.daemon.app import create_app
from personae.daemon.settings import Settings
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service
from personae.daemon.testing.launcher import Daemon

openai = pytest.importorskip("openai")

HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture
def sdk(tmp_path: Path):
    svc = fake_service(llm=FakeLLM(reply=lambda req: "Iron remembers. Fire forgets."))
    with TestClient(create_app(svc.settings, service=svc)) as client:
        yield openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    svc.close()


def test_usage_and_finish_reason(sdk) -> None:
    done = sdk.chat.completions.create(model="bram", messages=HELLO)
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.completion_tokens == 4  # the fake's words
    assert done.usage.prompt_tokens > 10  # the character's system prompt and the line
    assert done.usage.total_tokens == done.usage.prompt_tokens + 4
    # the budget is spent at a sentence end: it stops there
    cut = sdk.chat.completions.create(model="bram", messages=HELLO, max_tokens=2)
    assert cut.choices[0].message.content == "Iron remembers."
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 2


def test_streamed_usage_comes_in_the_final_chunk_when_asked(sdk) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="bram",
            messages=HELLO,
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    # past its budget of 3 the reply ends its sentence: "Fire forgets."
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    plain = list(sdk.chat.completions.create(model="bram", messages=HELLO, stream=True))
    assert all(c.usage is None for c in plain)


def test_models_retrieve(sdk) -> None:
    bram = sdk.models.retrieve("bram")
    assert bram.id == "bram" and bram.owned_by == "personae"
    base = sdk.models.retrieve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert base.id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("nobody")
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.models
def test_usage_and_length_from_the_real_engine(tmp_path: Path) -> None:
    """Greedy replies to two new players (each prompt without the other's memories):
    the whole one ends with `stop`, the same one cut a token short with `length`."""
    ask = [{"role": "user", "content": "Tell me about your forge and what you make there."}]
    with Daemon(state_dir=tmp_path) as d:
        client = openai.OpenAI(base_url=f"{d.url}/v1", api_key="unused")
        done = client.chat.completions.create(
            model="bram", messages=ask, max_tokens=200, temperature=0, user="usage-whole"
        )
        assert done.choices[0].finish_reason == "stop"
        whole = done.usage.completion_tokens
        assert 2 <= whole < 200
        assert done.usage.prompt_tokens > 20
        limit = min(4, whole - 1)
        cut = client.chat.completions.create(
            model="bram", messages=ask, max_tokens=limit, temperature=0, user="usage-cut"
        )
        assert cut.choices[0].finish_reason == "length"
        # past the budget the reply ended its sentence, within the grace, or was trimmed
        content = cut.choices[0].message.content
        assert content and content.rstrip()[-1] in ".!?…\"'*)"
        grace = Settings.model_fields["reply_finish_tokens"].default
        assert cut.usage.completion_tokens <= limit + grace
        assert cut.usage.prompt_tokens == done.usage.prompt_tokens


RAMBLE = "Iron remembers. " + "the merchant walked along the river " * 8


@pytest.fixture
def rambling(tmp_path: Path):
    """A character whose second sentence never ends within any budget."""
    svc = fake_service(llm=FakeLLM(reply=lambda req: RAMBLE))
    with TestClient(create_app(svc.settings, service=svc)) as client:
        yield openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    svc.close()


def test_a_cut_reply_ends_at_its_last_sentence_with_length(rambling) -> None:
    cut = rambling.chat.completions.create(model="bram", messages=HELLO, max_tokens=4)
    assert cut.choices[0].message.content == "Iron remembers."
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 2  # what was kept, not what was generated


def test_a_streamed_cut_reply_sends_no_fragment(rambling) -> None:
    chunks = list(
        rambling.chat.completions.create(model="bram", messages=HELLO, max_tokens=4, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Iron remembers."
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"


def test_a_reply_of_one_unfinished_sentence_trails_off(tmp_path: Path) -> None:
    svc = fake_service(llm=FakeLLM(reply=lambda req: RAMBLE.split(". ", 1)[1]))
    with TestClient(create_app(svc.settings, service=svc)) as client:
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
        cut = sdk.chat.completions.create(model="bram", messages=HELLO, max_tokens=4)
    svc.close()
    # 4 + 24 words of one sentence, each whole: kept, trailing off
    reply = cut.choices[0].message.content
    assert reply.endswith("river the merchant walked along…")
    assert cut.choices[0].finish_reason == "length"
