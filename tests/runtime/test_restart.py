"""State, memory, turns and deployments survive the process that wrote them."""

from __future__ import annotations

from tests.runtime.processes import run


def test_a_new_process_finds_everything_the_old_one_wrote(tmp_path) -> None:
    # a SQLite file is where a restart can lose data (WAL not checkpointed, a cache in
    # the dead process); PostgreSQL keeps it in the server, covered by the store tests
    db_url = f"sqlite:///{tmp_path / 'personae.db'}"
    now = "1800000000.0"
    written = run("write", db_url, now)
    assert written["serving"] == "v2" and written["trust"] == 0.3
    later_s = str(float(now) + 120)  # one half-life later
    read, later = run("read", db_url, now, later_s)  # another process, another interpreter
    assert read == written
    # same timestamp: newest id first
    assert read["memories"] == [
        ["The bridge collapsed", "event", 0.5, None],
        ["The player gave Mara the silver key", "event", 0.9, "p1"],
    ]
    assert read["turns"] == [["player", "Hi", None], ["character", "Well met.", "v2"]]
    assert read["history"] == [["deploy", "v1"], ["deploy", "v2"]]
    assert abs(later["emotion"]["joy"] - written["emotion"]["joy"] / 2) < 1e-6
    assert later["trust"] == written["trust"]
