"""Helper process for the restart and cross-process tests (not a test module).

python -m tests.runtime.worker write URL NOW   # state, memory, turns, deployments
python -m tests.runtime.worker read URL T...    # prints what it finds, at each time
python -m tests.runtime.worker assign N        # A/B variants of players 0..N-1
"""

from __future__ import annotations

import json
import sys

from personae.daemon.runtime.experiments import assign


def snapshot(url: str, now: float) -> dict:
    from personae.daemon.runtime import MemoryStore, Registry, StateStore, Temperament, TurnLog
    from personae.daemon.store import open_database

    engine = open_database(url)
    try:
        clock = lambda: now  # noqa: E731
        state = StateStore(engine, clock=clock).get("mara", "p1", Temperament(half_life_s=120))
        memories = MemoryStore(engine, clock=clock).recent("mara", "p1")
        turns = TurnLog(engine, clock=clock).recent("mara", "p1")
        reg = Registry(engine, clock=clock)
        return {
            "emotion": dict(state.emotion.blend),
            "intensity": state.emotion.intensity,
            "trust": state.relationship.trust,
            "affinity": state.relationship.affinity,
            "memories": [[m.text, m.kind, m.importance, m.player_id] for m in memories],
            "turns": [[t.role, t.text, t.version] for t in turns],
            "serving": reg.serving("mara", "prod").version.version,
            "history": [[d.action, d.version.version] for d in reg.history("mara", "prod")],
        }
    finally:
        engine.dispose()


def write(url: str, now: float) -> dict:
    from personae.daemon.characters import Character
    from personae.daemon.runtime import (
        MemoryStore,
        Registry,
        StateStore,
        StateUpdate,
        Temperament,
        TurnLog,
    )
    from personae.daemon.store import open_database

    engine = open_database(url)
    try:
        clock = lambda: now  # noqa: E731
        StateStore(engine, clock=clock).apply(
            "mara",
            "p1",
            StateUpdate({"joy": 0.6}, trust=0.3, affinity=0.5),
            Temperament(half_life_s=120),
        )
        mem = MemoryStore(engine, clock=clock)
        mem.remember("mara", "The player gave Mara the silver key", player_id="p1", importance=0.9)
        mem.remember("mara", "The bridge collapsed", kind="event")
        log = TurnLog(engine, clock=clock)
        log.append(session_id="s1", character_id="mara", player_id="p1", role="player", text="Hi")
        log.append(session_id="s1", character_id="mara", player_id="p1", role="character",
                   text="Well met.", version="v2")  # fmt: skip
        reg = Registry(engine, clock=clock)
        for v in ("v1", "v2"):
            reg.register(
                Character(id="mara", name="Mara", description="A smith."),
                version=v,
                base_model="base",
            )
            reg.deploy("mara", v, environment="prod")
    finally:
        engine.dispose()
    return snapshot(url, now)


def main(argv: list[str]) -> None:
    if argv[0] == "assign":
        weights = [("control", 0.5), ("new-adapter", 0.3), ("new-voice", 0.2)]
        print(json.dumps([assign("exp-salt", f"player-{i}", weights) for i in range(int(argv[1]))]))
    elif argv[0] == "write":
        print(json.dumps(write(argv[1], float(argv[2]))))
    elif argv[0] == "read":  # at the given times
        print(json.dumps([snapshot(argv[1], float(t)) for t in argv[2:]]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
