"""A key bound to player ids reads and writes only those players' state, over a real
socket (sessions) and the OpenAI API (`user`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from personae.daemon.auth import KeyStore, Principal, default_player
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive, send, until


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[Daemon, str, str]]:
    state = tmp_path_factory.mktemp("players")
    store = KeyStore(state / "keys.json")
    alice, _ = store.create("alice-client", players=["alice", "alice-*"])
    server, _ = store.create("game-server")
    with Daemon(state_dir=state, fakes=FakeEngines(voices=False)) as d:
        yield d, alice, server


def update_player(d: Daemon, key: str, player: str) -> dict:
    with connect(d.ws, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert receive(ws)["type"] == "session.created"
        send(ws, {"type": "session.update", "session": {"player_id": player}})
        event = receive(ws)
        while event["type"] not in ("session.updated", "error"):
            event = receive(ws)
        return event


def test_a_bound_key_acts_only_for_its_players(keyed) -> None:
    d, alice, server = keyed
    assert update_player(d, alice, "alice")["type"] == "session.updated"
    assert update_player(d, alice, "alice-alt")["type"] == "session.updated"
    refused = update_player(d, alice, "bob")
    assert refused["type"] == "error" and refused["error"]["code"] == "forbidden_player"
    assert update_player(d, server, "bob")["type"] == "session.updated"  # unbound key


def test_the_openai_user_follows_the_binding(keyed) -> None:
    d, alice, _ = keyed

    def complete(user: str | None) -> httpx.Response:
        body = {"model": "bram", "messages": [{"role": "user", "content": "Hello."}]}
        if user is not None:
            body["user"] = user
        return httpx.post(
            d.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {alice}"},
            timeout=30,
        )

    assert complete("alice").status_code == 200
    refused = complete("bob")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_player"
    assert complete(None).status_code == 200  # its own player, not the shared default


def test_a_bound_key_without_a_player_gets_its_own() -> None:
    bound = Principal("k1", "k", players=("alice",))
    assert default_player(bound, "default") == "key-k1"
    assert default_player(Principal("k2", "k"), "default") == "default"


def test_the_session_still_works_for_a_bound_key(keyed) -> None:
    d, alice, _ = keyed
    with connect(d.ws, additional_headers={"Authorization": f"Bearer {alice}"}) as ws:
        assert receive(ws)["type"] == "session.created"
        send(ws, {"type": "session.update", "session": {"player_id": "alice"}})
        send(ws, {"type": "response.create", "response": {"character": "bram"}})
        assert until(ws, "response.done")["response"]["status"] == "completed"
