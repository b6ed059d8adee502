"""The OpenAI API in process: characters, raw adapters, the base model, SSE, refusals.

The app runs on fake engines (the FakeLLM records each request), so these tests check
what the API sends to the engine and what it answers, not what a model says; the
real-model path is tests/production/test_vllm_engine.py. The OpenAI Python SDK is
used as a client where it is installed, so the wire format is the one SDKs parse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from personae.daemon.app import create_app
from personae.daemon.openai_api import served_model_name
from personae.daemon.session.prompt import system_text
from personae.daemon.testing import FakeLLM
from personae.daemon.testing.harness import fake_service


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "adapters"
    (root / "voices" / "v1").mkdir(parents=True)
    (root / "voices" / "v1" / "adapter_config.json").write_text("{}")
    return root


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM(reply=lambda req: "Iron remembers. Fire forgets.")


@pytest.fixture
def app_client(tmp_path: Path, store: Path, llm: FakeLLM):
    svc = fake_service(
        llm=llm,
        adapters_dir=store,
        database_url=f"sqlite:///{tmp_path / 'personae.db'}",
        keys_file=tmp_path / "keys.json",
    )
    app = create_app(svc.settings, service=svc)
    with TestClient(app) as client:
        yield client, svc
    svc.close()


def error_of(resp) -> dict:
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def sse_events(text: str) -> list[str]:
    """The data fields of an SSE body; every event is one `data:` line and a blank line."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e.removeprefix("data: ") for e in events]


def ask(client, model: str, content: str = "Hello!", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return client.post("/v1/chat/completions", json=body)


def test_models_list_the_base_and_every_character(app_client) -> None:
    client, svc = app_client
    data = client.get("/v1/models").json()
    assert data["object"] == "list"
    by_id = {m["id"]: m for m in data["data"]}
    base = served_model_name(svc)
    assert base == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert by_id[base]["parent"] is None
    assert set(by_id) == {base, *svc.cast}
    assert all(by_id[c]["parent"] == base for c in svc.cast)
    assert by_id["bram"]["name"] == "Bram"


def test_a_character_answers_with_its_prompt_memory_and_parameters(app_client, llm) -> None:
    client, svc = app_client
    svc.runtime.game_event(["bram"], "ann", "raid", "Raiders burned the granary at dawn")
    resp = client.post(
        "/v1/chat/completions",
        json={
            "model": "bram",
            "user": "ann",
            "messages": [
                {"role": "system", "content": "Keep it under ten words."},
                {"role": "user", "content": "Did you see the smoke?"},
                {"role": "assistant", "content": "Aye."},
                {"role": "user", "content": "What burned?"},
            ],
            "temperature": 0.2,
            "max_tokens": 7,
            "stop": "\n",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "chat.completion" and body["model"] == "bram"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Iron remembers. Fire forgets."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    request = llm.requests[-1]
    system = request.messages[0]
    assert system.role == "system"
    assert system.content.startswith("You are Bram.")
    context = request.messages[-2]  # this reply's context, just before the question
    assert context.role == "system"
    assert "granary" in context.content  # ann's memory of the raid, from the runtime
    assert context.content.endswith("For this reply: Keep it under ten words.")
    assert [m.role for m in request.messages[1:]][-4:] == ["user", "assistant", "system", "user"]
    assert request.messages[-1].content == "What burned?"
    bram = svc.cast["bram"].generation
    assert request.params.temperature == 0.2
    # the budget plus the grace a reply gets to end its sentence (session/finishing.py)
    assert request.params.max_tokens == 7 + svc.settings.reply_finish_tokens
    assert request.params.stop == ("\n",)
    assert request.params.top_p == bram.top_p  # not overridden: the character's
    assert request.params.repetition_penalty == bram.repetition_penalty
    # the player's line and the reply are in ann's turn log with bram, as in a session
    texts = [t.text for t in svc.runtime.turns.recent("bram", "ann")]
    assert "What burned?" in texts and "Iron remembers. Fire forgets." in texts


def test_players_are_kept_apart_by_user(app_client, llm) -> None:
    client, svc = app_client
    svc.runtime.game_event(["mara"], "ann", "gift", "Ann gave Mara a silver compass")
    assert ask(client, "mara", "Remember me?", user="ann").status_code == 200
    assert "compass" in system_text(llm.requests[-1].messages)
    assert ask(client, "mara", "Remember me?", user="bob").status_code == 200
    assert "compass" not in system_text(llm.requests[-1].messages)


def test_streaming_is_openai_sse(app_client) -> None:
    client, _ = app_client
    resp = ask(client, "wren", stream=True, stream_options={"include_usage": True})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "wren" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(content) == "Iron remembers. Fire forgets."
    # sentence by sentence: a tail that never ends is never sent (session/finishing.py)
    assert [c for c in content if c] == ["Iron remembers.", " Fire forgets."]
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


def test_the_openai_sdk_talks_to_a_character(app_client) -> None:
    import openai  # the dev extra installs it

    client, _ = app_client
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    done = sdk.chat.completions.create(
        model="bram", messages=[{"role": "user", "content": "Hello!"}], temperature=0
    )
    assert done.choices[0].message.content == "Iron remembers. Fire forgets."
    stream = sdk.chat.completions.create(
        model="bram", messages=[{"role": "user", "content": "Hello!"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "Iron remembers. Fire forgets."
    )
    assert "bram" in [m.id for m in sdk.models.list()]
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "x"}])


def test_an_engine_failure_is_an_error_in_openai_shape(tmp_path: Path, store: Path) -> None:
    llm = FakeLLM(fail_after=2)
    svc = fake_service(llm=llm, adapters_dir=store, database_url=f"sqlite:///{tmp_path / 'p.db'}")
    with TestClient(create_app(svc.settings, service=svc)) as client:
        resp = ask(client, "bram")
        assert resp.status_code == 500
        assert "fake LLM failure" in error_of(resp)["message"]
        # mid-stream the status is already sent: the error travels as an event, as vLLM's
        events = sse_events(ask(client, "bram", stream=True).text)
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "engine_error" and "fake LLM failure" in error["message"]
        assert (
            "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-2])
            == "Hello there."  # the complete sentence before the failure
        )
        # the daemon still serves
        llm.fail_after = None
        assert ask(client, "bram").status_code == 200
    svc.close()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "bram", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "bram", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {"model": "bram", "messages": [{"role": "user", "content": "x"}], "temperature": 5},
            "temperature",
        ),
        ({"model": "bram", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_bad_requests_name_the_parameter(app_client, body, param) -> None:
    client, _ = app_client
    resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400
    assert error_of(resp)["param"] == param


def test_bad_json_and_unknown_models(app_client) -> None:
    client, _ = app_client
    resp = client.post("/v1/chat/completions", content=b"{not json")
    assert resp.status_code == 400 and error_of(resp)["code"] == "invalid_json"
    resp = ask(client, "gpt-4o")
    assert resp.status_code == 404
    assert error_of(resp) == {
        "message": "The model `gpt-4o` does not exist.",
        "type": "not_found_error",
        "param": "model",
        "code": "model_not_found",
    }


def test_lora_adapters_load_and_unload_like_vllm(app_client, llm, store) -> None:
    client, svc = app_client
    resp = client.post(
        "/v1/load_lora_adapter", json={"lora_name": "voices-v1", "lora_path": "voices/v1"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.text == "Success: LoRA adapter 'voices-v1' added successfully."
    assert llm.adapters == {"voices-v1": str((store / "voices" / "v1").resolve())}
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed["voices-v1"]["parent"] == served_model_name(svc)
    assert listed["voices-v1"]["root"] == str((store / "voices" / "v1").resolve())

    # a raw adapter (or the base) gets the messages as they are: no character, no memory
    messages = [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "Hi"},
    ]
    resp = client.post(
        "/v1/chat/completions", json={"model": "voices-v1", "messages": messages, "seed": 3}
    )
    assert resp.status_code == 200
    request = llm.requests[-1]
    assert request.adapter == "voices-v1" and request.seed == 3
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "You are a test."),
        ("user", "Hi"),
    ]
    assert request.params.temperature == 1.0  # vLLM's defaults, not a character's
    client.post(
        "/v1/chat/completions",
        json={"model": served_model_name(svc), "messages": messages},
    ).raise_for_status()
    assert llm.requests[-1].adapter is None

    again = {"lora_name": "voices-v1", "lora_path": str(store / "voices" / "v1")}
    resp = client.post("/v1/load_lora_adapter", json=again)
    assert resp.status_code == 400 and error_of(resp)["code"] == "already_loaded"
    resp = client.post("/v1/load_lora_adapter", json={**again, "load_inplace": True})
    assert resp.status_code == 200  # absolute inside the store is fine

    resp = client.post("/v1/unload_lora_adapter", json={"lora_name": "voices-v1"})
    assert resp.status_code == 200
    assert resp.text == "Success: LoRA adapter 'voices-v1' removed successfully."
    assert llm.adapters == {}
    resp = client.post("/v1/unload_lora_adapter", json={"lora_name": "voices-v1"})
    assert resp.status_code == 404 and error_of(resp)["param"] == "lora_name"
    assert ask(client, "voices-v1").status_code == 404


def test_adapter_paths_stay_inside_the_store(app_client, llm, store, tmp_path) -> None:
    client, _ = app_client
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store / "sneaky").symlink_to(outside)

    def load(name: str, path: str):
        return client.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})

    for path in ("../elsewhere", "voices/../../elsewhere", str(outside), "/etc", "sneaky"):
        resp = load("x", path)
        assert resp.status_code == 400, path
        assert error_of(resp)["code"] == "invalid_path"
        assert "outside the adapter store" in error_of(resp)["message"]
    resp = load("x", "voices/v9")
    assert resp.status_code == 404 and error_of(resp)["param"] == "lora_path"
    for name in ("bram", "has/slash", "", served_model_name(app_client[1])):
        resp = load(name, "voices/v1")
        assert resp.status_code == 400 and error_of(resp)["param"] == "lora_name", name
    assert llm.adapters == {}


def test_api_keys_scope_characters_and_raw_access(tmp_path: Path, store: Path, llm) -> None:
    from personae.daemon.auth import KeyStore

    keys = KeyStore(tmp_path / "keys.json")
    mara_only, _ = keys.create("quest-npc", characters=("mara",))
    admin, _ = keys.create("ops", admin=True)
    svc = fake_service(
        llm=llm,
        adapters_dir=store,
        database_url=f"sqlite:///{tmp_path / 'p.db'}",
        keys_file=tmp_path / "keys.json",
    )
    with TestClient(create_app(svc.settings, service=svc)) as client:

        def as_(key: str | None) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"} if key else {}

        resp = client.get("/v1/models")
        assert resp.status_code == 401 and error_of(resp)["code"] == "unauthorized"
        listed = [m["id"] for m in client.get("/v1/models", headers=as_(mara_only)).json()["data"]]
        assert "mara" in listed and "bram" not in listed
        body = {"model": "mara", "messages": [{"role": "user", "content": "Hi"}]}
        assert client.post("/v1/chat/completions", json=body, headers=as_(mara_only)).is_success
        resp = client.post(
            "/v1/chat/completions", json={**body, "model": "bram"}, headers=as_(mara_only)
        )
        assert resp.status_code == 403 and error_of(resp)["code"] == "forbidden"
        # the base model and adapter loading are an operator's
        base = {**body, "model": served_model_name(svc)}
        assert (
            client.post("/v1/chat/completions", json=base, headers=as_(mara_only)).status_code
            == 403
        )
        assert client.post("/v1/chat/completions", json=base, headers=as_(admin)).is_success
        load = {"lora_name": "voices-v1", "lora_path": "voices/v1"}
        resp = client.post("/v1/load_lora_adapter", json=load, headers=as_(mara_only))
        assert resp.status_code == 403
        assert client.post("/v1/load_lora_adapter", json=load, headers=as_(admin)).is_success
    svc.close()
