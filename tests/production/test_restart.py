"""A daemon killed and started again on its SQLite file finds state, memory and deployments.

The same launcher as the replica tests (the testing kit's fake speech engines,
the `echo` LLM that answers with the system prompt it was given), one process at a
time on one database file: SIGKILL, then a new process.
"""

from __future__ import annotations

import httpx

from personae.daemon.characters import default_cast_dir, load_cast
from personae.daemon.testing.launcher import Daemon, FakeEngines
from personae.sdk import protocol as p
from tests.production.test_replicas import prompt_seen_by, send_event


def test_state_memory_and_deployments_survive_a_killed_daemon(tmp_path) -> None:
    settings = {
        "database_url": f"sqlite:///{tmp_path / 'personae.db'}",
        "llm_engine": "echo",
        "keys_file": tmp_path / "keys.json",
        "adapters_dir": tmp_path / "adapters",
    }
    daemon = Daemon(state_dir=tmp_path, fakes=FakeEngines(), settings=settings)
    try:
        daemon.start()
        event = p.GameEvent(
            name="gift",
            description="The player gave Mara the silver key",
            characters=["mara"],
            data={"emotions": {"joy": 0.9}, "trust": 0.4},
        )
        before = send_event(daemon, "ann", event, until="npc.emotion")
        assert before.dominant == "joy" and before.trust is not None and before.trust > 0

        mara = load_cast([default_cast_dir()])["mara"]
        v2 = mara.model_copy(update={"description": "The archivist, keeper of the silver key."})
        admin = f"{daemon.url}/v1/admin/characters/mara"
        httpx.post(
            f"{admin}/versions",
            json={"version": "v2", "character": v2.model_dump(mode="json")},
            timeout=30,
        ).raise_for_status()
        httpx.post(f"{admin}/deploy", json={"version": "v2"}, timeout=60).raise_for_status()

        daemon.kill()  # no shutdown: whatever was acknowledged must already be on disk
        daemon.start()

        prompt = prompt_seen_by(daemon, "mara", "ann", "Do you remember what I gave you?")
        assert "keeper of the silver key" in prompt  # the deployed version serves again
        assert "gave Mara the silver key" in prompt  # her memory of the player
        listed = httpx.get(f"{daemon.url}/v1/admin/characters", timeout=10).json()["characters"]
        assert next(c for c in listed if c["id"] == "mara")["serving_version"] == "v2"
        after = send_event(
            daemon, "ann", p.GameEvent(name="rain", characters=["mara"]), until="npc.emotion"
        )
        # the relationship survived the restart (a fresh one would start at 0); the
        # friendly question since may only have raised it
        assert before.trust <= after.trust < before.trust + 0.1
    finally:
        daemon.stop()
