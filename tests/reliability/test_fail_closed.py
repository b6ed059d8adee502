"""Keys fail closed on a real daemon: revoking the last key or deleting the keys file
while it runs refuses everyone; admin routes then never answer by peer address alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from personae.daemon.auth import KeyStore
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.daemon.testing.wire import receive


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[Daemon, KeyStore, str]]:
    store = KeyStore(tmp_path / "keys.json")
    _, record = store.create("game-server")
    with Daemon(state_dir=tmp_path, fakes=FakeEngines(voices=False)) as d:
        yield d, store, record.id


def refused(d: Daemon) -> str:
    """The error code an anonymous WebSocket client gets, before its close (1008)."""
    with connect(d.ws, subprotocols=["personae.v1"]) as ws:
        event = receive(ws)
        assert event["type"] == "error"
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        return event["error"]["code"]


def test_revoking_the_last_key_refuses_everyone(keyed) -> None:
    d, store, key_id = keyed
    assert refused(d) == "unauthorized"
    store.revoke(key_id)
    assert refused(d) == "unauthorized"
    anonymous = httpx.get(f"{d.url}/v1/characters")
    assert anonymous.status_code == 401
    # admin from this very host (a reverse proxy, say) is not enough once keys are required
    assert httpx.get(f"{d.url}/v1/admin/characters").status_code in (401, 403)
    assert httpx.get(f"{d.url}/v1/admin/characters").status_code != 200


def test_deleting_the_keys_file_refuses_everyone(keyed) -> None:
    d, store, _ = keyed
    store.path.unlink()
    assert refused(d) == "unauthorized"
    assert httpx.get(f"{d.url}/v1/characters").status_code == 401
    assert httpx.get(f"{d.url}/v1/admin/characters").status_code in (401, 403)


def test_required_keys_latch_even_when_the_first_key_came_late(tmp_path: Path) -> None:
    with Daemon(state_dir=tmp_path, fakes=FakeEngines(voices=False)) as d:
        assert httpx.get(f"{d.url}/v1/characters").status_code == 200  # local mode
        store = KeyStore(tmp_path / "keys.json")
        key, record = store.create("late")
        ok = httpx.get(f"{d.url}/v1/characters", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        store.revoke(record.id)
        assert httpx.get(f"{d.url}/v1/characters").status_code == 401
        assert refused(d) == "unauthorized"
