"""Two daemon replicas on one PostgreSQL: what one learns, the other knows.

Daemons keep nothing of their own beyond live sessions: character state, memory and
turn logs, character versions and deployments live in the database. Two real daemon processes start together on a fresh
database of a throwaway PostgreSQL server (Debian's binaries, tests/store's fixture;
the schema migration is serialised by an advisory lock). A game event sent over
replica A's WebSocket becomes the character's memory; replica B, asked through the
OpenAI API for the same player, puts that memory in the character's prompt. A version
deployed through A's admin API serves on B once B polls the registry.

Both run on the testing kit's fake speech engines and the `echo` LLM, which
answers with the system prompt it was given: the reply shows what the prompt holds.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from websockets.sync.client import connect

from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.sdk import protocol as p
from personae.sdk.framing import Framing, decode_server, encode


@pytest.fixture(scope="module")
def postgres_db(postgres_admin_url):
    """One fresh database for the module's replicas (on the run's PostgreSQL server)."""
    from sqlalchemy.engine import make_url

    from tests.store.databases import _admin

    name = f"replicas_{uuid.uuid4().hex[:12]}"
    _admin(postgres_admin_url, f'CREATE DATABASE "{name}"')
    return make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, postgres_db):
    tmp_path = tmp_path_factory.mktemp("replicas")
    settings = {
        "database_url": postgres_db,
        "llm_engine": "echo",
        "keys_file": tmp_path / "keys.json",
        "adapters_dir": tmp_path / "adapters",
        "registry_poll_s": 0.5,
    }
    a, b = (Daemon(state_dir=tmp_path, fakes=FakeEngines(), settings=settings) for _ in "ab")
    try:
        a.launch(), b.launch()  # together: both migrate the fresh database at start-up
        yield a.wait_ready(), b.wait_ready()
    finally:
        a.stop()
        b.stop()


def send_event(daemon: Daemon, player: str, event: p.ClientEvent, until: str) -> p.ServerEvent:
    """One WebSocket session on `daemon`: set the player, send `event`, await `until`."""
    url = f"ws://127.0.0.1:{daemon.port}/v1/realtime"
    with connect(url, subprotocols=[p.SUBPROTOCOL]) as ws:
        ws.send(encode(p.SessionUpdate(session=p.SessionConfig(player_id=player)), Framing.JSON))
        ws.send(encode(event, Framing.JSON))
        while True:
            received, _ = decode_server(ws.recv(timeout=30))
            assert received.type != "error", received
            if received.type == until:
                return received


def prompt_seen_by(daemon: Daemon, character: str, player: str, line: str) -> str:
    resp = httpx.post(
        f"{daemon.url}/v1/chat/completions",
        json={"model": character, "user": player, "messages": [{"role": "user", "content": line}]},
        timeout=30,
    )
    resp.raise_for_status()
    return resp.json()["choices"][0]["message"]["content"]


def test_memory_written_through_one_replica_is_seen_through_the_other(replicas) -> None:
    a, b = replicas
    before = prompt_seen_by(b, "bram", "ann", "Anything new?")
    assert "dragon" not in before.lower()

    event = p.GameEvent(
        name="dragon_attack",
        description="A dragon burned the mill by the river bridge",
        characters=["bram"],
        data={"emotions": {"fear": 0.8}, "importance": 0.9},
    )
    emotion = send_event(a, "ann", event, until="npc.emotion")
    assert emotion.character == "bram"

    after = prompt_seen_by(b, "bram", "ann", "What happened to the mill?")
    assert "dragon burned the mill" in after  # ann's memory, recalled on the other replica
    assert after != before  # and bram's feelings towards ann moved with it
    # state is per player: bob's bram knows nothing of it
    assert "dragon" not in prompt_seen_by(b, "bram", "bob", "What happened to the mill?")
    assert "dragon burned the mill" in prompt_seen_by(a, "bram", "ann", "Tell me again.")


def test_turns_logged_by_both_replicas_land_in_one_log(replicas, postgres_db) -> None:
    from personae.daemon.runtime import TurnLog
    from personae.daemon.store import open_database

    a, b = replicas
    prompt_seen_by(a, "mara", "ann", "Line one, said to replica A.")
    prompt_seen_by(b, "mara", "ann", "Line two, said to replica B.")
    engine = open_database(postgres_db)
    try:
        turns = TurnLog(engine).recent("mara", "ann")
    finally:
        engine.dispose()
    said = [t.text for t in turns if t.role == "player"]
    assert said == ["Line one, said to replica A.", "Line two, said to replica B."]


def test_a_deployment_made_through_one_replica_serves_on_the_other(replicas) -> None:
    from personae.daemon.characters import default_cast_dir, load_cast

    a, b = replicas
    bram = load_cast([default_cast_dir()])["bram"]
    v2 = bram.model_copy(update={"description": "The blacksmith, and now the bell-ringer too."})
    assert "bell-ringer" not in prompt_seen_by(b, "bram", "ann", "Who are you?")

    admin = f"{a.url}/v1/admin/characters/bram"
    body = {"version": "v2", "character": v2.model_dump(mode="json")}
    httpx.post(f"{admin}/versions", json=body, timeout=30).raise_for_status()
    httpx.post(
        f"{admin}/deploy", json={"version": "v2", "actor": "test"}, timeout=60
    ).raise_for_status()

    for _ in range(150):  # the other replica polls the deployments: wait up to ~30 s
        listed = httpx.get(f"{b.url}/v1/admin/characters", timeout=10).json()["characters"]
        if next(c for c in listed if c["id"] == "bram")["serving_version"] == "v2":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the other replica never served v2: {listed}")
    assert "bell-ringer" in prompt_seen_by(b, "bram", "ann", "Who are you?")
