"""API keys: hashed at rest, scoped, presented in a header or subprotocol, never the URL."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, Request
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from personae.daemon.app import create_app
from personae.daemon.auth import (
    LOCAL,
    Authenticator,
    AuthError,
    KeyStore,
    credentials,
    startup_banner,
)
from personae.daemon.errors import ConfigError
from personae.daemon.settings import Settings
from personae.daemon.testing.harness import fake_service, served
from personae.daemon.testing.wire import receive, say, send, until

# ---------------------------------------------------------------------- key store


def test_keys_are_stored_hashed_and_private(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("quest-server", characters=["mara"])
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and key.split("_", 2)[2] not in text
    assert record.hash in text and record.hash.startswith("sha256:")
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    principal = store.authenticate(key)
    assert principal is not None and principal.key_id == record.id
    assert principal.characters == ("mara",) and not principal.admin


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # wrong secret
        lambda k: "pk_000000000000_" + k.split("_", 2)[2],  # unknown id
        lambda k: k.upper(),  # malformed
        lambda k: "",
        lambda k: k + "\n",
    ],
)
def test_wrong_keys_are_refused(tmp_path: Path, mangle) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, _ = store.create("a")
    assert store.authenticate(mangle(key)) is None


def test_revocation_is_seen_by_a_running_store(tmp_path: Path) -> None:
    daemon_view = KeyStore(tmp_path / "keys.json")
    cli_view = KeyStore(tmp_path / "keys.json")
    key, record = cli_view.create("a")
    assert daemon_view.authenticate(key) is not None
    cli_view.revoke(record.id)
    assert daemon_view.authenticate(key) is None
    assert [r.active for r in daemon_view.records()] == [False]
    with pytest.raises(KeyError):
        cli_view.revoke("nope")


def test_bad_scopes_are_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    with pytest.raises(ValueError):
        store.create("a", characters=["../mara"])
    with pytest.raises(ValueError):
        store.create("a", characters=[])


def test_scope_patterns() -> None:
    from personae.daemon.auth import Principal

    p = Principal("k", "k", characters=("mara", "guard-*"))
    assert p.may_use("mara") and p.may_use("guard-north")
    assert not p.may_use("bram") and not p.may_use("maranda")
    assert p.visible(["bram", "mara", "guard-1"]) == ["mara", "guard-1"]


def test_a_corrupt_keys_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        KeyStore(tmp_path / "keys.json").records()


# ---------------------------------------------------------------------- credentials


def test_credentials_from_header_or_subprotocol() -> None:
    assert credentials({"authorization": "Bearer pk_x"}, []) == "pk_x"
    assert credentials({"authorization": "bearer  pk_x "}, []) == "pk_x"
    assert credentials({}, ["personae.v1", "personae.key.pk_y"]) == "pk_y"
    assert credentials({}, ["personae.v1"]) is None
    with pytest.raises(AuthError):
        credentials({"authorization": "Basic dXNlcjpwYXNz"}, [])


@pytest.mark.parametrize("query", ["key=pk_x", "api_key=pk_x", "token=pk_x", "a=1&access_token=x"])
def test_a_key_only_in_the_query_string_is_refused(query: str) -> None:
    with pytest.raises(AuthError) as info:
        credentials({}, [], query)
    assert info.value.code == "key_in_query"


def test_local_mode_without_keys_is_loud(tmp_path: Path) -> None:
    auth = Authenticator(KeyStore(tmp_path / "keys.json"))
    assert auth.local_mode
    assert auth.principal({}) is LOCAL
    assert "LOCAL DEVELOPMENT MODE" in startup_banner(auth)
    KeyStore(tmp_path / "keys.json").create("a")
    assert not auth.local_mode
    with pytest.raises(AuthError) as info:
        auth.principal({})
    assert info.value.code == "unauthorized"
    assert "required" in startup_banner(auth)


def test_require_keys_refuses_to_start_without_keys(tmp_path: Path) -> None:
    settings = Settings(keys_file=tmp_path / "keys.json", require_keys=True)
    with pytest.raises(ConfigError, match="require_keys"):
        create_app(settings, service=None)


# ---------------------------------------------------------------------- over the wire


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    svc = fake_service(state_dir=tmp)
    store = KeyStore(svc.settings.resolved_keys_file)
    keys = {
        "mara": store.create("mara only", characters=["mara"])[0],
        "all": store.create("everything")[0],
        "admin": store.create("ops", admin=True)[0],
    }
    app = create_app(svc.settings, service=svc)

    def admin(request: Request) -> None:
        app.state.require_admin(request)

    @app.get("/test-admin", dependencies=[Depends(admin)])
    async def admin_only() -> dict[str, bool]:
        return {"ok": True}

    with served(app) as address:
        yield address, keys, store
    svc.close()


def refusal(ws) -> tuple[dict, int]:
    event = receive(ws)
    with pytest.raises(ConnectionClosed) as info:
        receive(ws)
    assert info.value.rcvd is not None
    return event, info.value.rcvd.code


def test_no_key_is_refused_with_1008(daemon) -> None:
    address, _, _ = daemon
    with connect(f"ws://{address}/v1/realtime") as ws:
        event, code = refusal(ws)
    assert event["type"] == "error" and event["error"]["code"] == "unauthorized"
    assert code == 1008


def test_a_wrong_key_is_refused(daemon) -> None:
    address, keys, _ = daemon
    bad = keys["all"][:-2] + "zz"
    with connect(
        f"ws://{address}/v1/realtime", additional_headers={"Authorization": f"Bearer {bad}"}
    ) as ws:
        event, code = refusal(ws)
    assert event["error"]["code"] == "invalid_key" and code == 1008


def test_a_key_in_the_url_is_refused(daemon) -> None:
    address, keys, _ = daemon
    with connect(f"ws://{address}/v1/realtime?key={keys['all']}") as ws:
        event, code = refusal(ws)
    assert event["error"]["code"] == "key_in_query" and code == 1008


def test_header_key_opens_a_session(daemon) -> None:
    address, keys, _ = daemon
    with connect(
        f"ws://{address}/v1/realtime", additional_headers={"Authorization": f"Bearer {keys['all']}"}
    ) as ws:
        assert receive(ws)["type"] == "session.created"
        send(ws, say("Hello Bram."))
        send(ws, {"type": "response.create", "response": {"character": "bram"}})
        assert until(ws, "response.done")["response"]["status"] == "completed"


def test_subprotocol_key_opens_a_session_and_is_never_echoed(daemon) -> None:
    address, keys, _ = daemon
    with connect(
        f"ws://{address}/v1/realtime",
        subprotocols=["personae.v1", f"personae.key.{keys['all']}"],  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "personae.v1"
        assert receive(ws)["type"] == "session.created"


def test_a_revoked_key_is_refused_at_the_next_connection(daemon) -> None:
    address, _, store = daemon
    key, record = store.create("temp")
    url = f"ws://{address}/v1/realtime"
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert receive(ws)["type"] == "session.created"
    store.revoke(record.id)
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        event, code = refusal(ws)
    assert event["error"]["code"] == "invalid_key" and code == 1008


def test_scopes_limit_characters_in_every_event(daemon) -> None:
    address, keys, _ = daemon
    with connect(
        f"ws://{address}/v1/realtime",
        additional_headers={"Authorization": f"Bearer {keys['mara']}"},
    ) as ws:
        assert receive(ws)["type"] == "session.created"
        forbidden = [
            {"type": "session.update", "session": {"characters": ["bram"]}},
            {"type": "session.update", "session": {"pinned_character": "wren"}},
            {"type": "response.create", "response": {"character": "bram"}},
            {"type": "game.event", "name": "x", "characters": ["bram"]},
            {"type": "npc.feedback", "character": "bram", "score": 1},
            {
                "type": "conversation.item.create",
                "item": {
                    "role": "assistant",
                    "character": "wren",
                    "content": [{"type": "output_text", "text": "hi"}],
                },
            },
        ]
        for event in forbidden:
            send(ws, event)
            error = until(ws, "error")["error"]
            assert error["code"] == "forbidden_character", (event, error)
            assert error["event_type"] == event["type"]
        # an unknown id lists only the characters this key may see
        send(ws, {"type": "response.create", "response": {"character": "nobody"}})
        error = until(ws, "error")["error"]
        assert error["code"] == "unknown_character"
        assert "mara" in error["message"] and "bram" not in error["message"]
        # the default scene holds only the key's characters: routing picks mara
        send(ws, say("Hey Bram, how is the forge?"))
        send(ws, {"type": "response.create"})
        route = until(ws, "npc.route")
        assert route["character"] == "mara" and set(route["scores"]) <= {"mara"}
        assert until(ws, "response.done")["response"]["character"] == "mara"


def test_character_list_is_scoped(daemon) -> None:
    address, keys, _ = daemon
    base = f"http://{address}"
    assert httpx.get(f"{base}/v1/characters").status_code == 401
    listed = httpx.get(
        f"{base}/v1/characters", headers={"Authorization": f"Bearer {keys['mara']}"}
    ).json()
    assert [c["id"] for c in listed["characters"]] == ["mara"]
    assert httpx.get(f"{base}/v1/characters?key={keys['all']}").status_code == 401


def test_admin_routes_need_an_admin_key(daemon) -> None:
    address, keys, _ = daemon
    url = f"http://{address}/test-admin"
    assert httpx.get(url).status_code == 401
    r = httpx.get(url, headers={"Authorization": f"Bearer {keys['all']}"})
    assert r.status_code == 403
    r = httpx.get(url, headers={"Authorization": f"Bearer {keys['admin']}"})
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_health_stays_open(daemon) -> None:
    address, _, _ = daemon
    assert httpx.get(f"http://{address}/healthz").status_code == 200


def test_local_mode_admin_is_loopback_only(tmp_path: Path) -> None:
    svc = fake_service(state_dir=tmp_path)
    app = create_app(svc.settings, service=svc)
    from starlette.requests import Request

    def request(host: str) -> Request:
        return Request({"type": "http", "headers": [], "client": (host, 1), "query_string": b""})

    app.state.require_admin(request("127.0.0.1"))
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as info:
        app.state.require_admin(request("10.0.0.7"))
    assert info.value.status_code == 403
    svc.close()
