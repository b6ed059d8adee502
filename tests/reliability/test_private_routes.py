"""Routes that describe the daemon follow the key requirement; a scraper network may
read /metrics; chat completions say 401 before they say whether a model exists."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from personae.daemon.auth import KeyStore
from personae.daemon.settings import Settings
from personae.daemon.testing.launcher import Daemon, FakeEngines

DESCRIBING = ["/metrics", "/docs", "/openapi.json", "/redoc"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[tuple[Daemon, str, str]]:
    state = tmp_path_factory.mktemp("private")
    store = KeyStore(state / "keys.json")
    player, _ = store.create("game-server")
    admin, _ = store.create("ops", admin=True)
    settings = {"trusted_networks": ["127.0.0.2/32"]}
    with Daemon(state_dir=state, fakes=FakeEngines(voices=False), settings=settings) as d:
        yield d, player, admin


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", DESCRIBING)
def test_describing_routes_need_an_admin_key(keyed, path: str) -> None:
    d, player, admin = keyed
    anonymous = httpx.get(d.url + path)
    assert anonymous.status_code == 401
    assert "bram" not in anonymous.text and "/v1/admin" not in anonymous.text
    assert httpx.get(d.url + path, headers=bearer(player)).status_code == 403
    assert httpx.get(d.url + path, headers=bearer(admin)).status_code == 200


def test_a_trusted_scraper_reads_metrics_and_nothing_else(keyed) -> None:
    d, _, _ = keyed
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as scraper:
        assert scraper.get(d.url + "/metrics").status_code == 200
        assert scraper.get(d.url + "/openapi.json").status_code == 401
        assert scraper.get(d.url + "/v1/characters").status_code == 401


def test_chat_completions_answer_401_whether_or_not_the_model_exists(keyed) -> None:
    d, _, _ = keyed
    for model in ("bram", "no-such-character"):
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
        r = httpx.post(d.url + "/v1/chat/completions", json=body)
        assert r.status_code == 401, (model, r.status_code)


def test_a_bad_trusted_network_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="not-a-network"):
        Settings(trusted_networks=("not-a-network",))
