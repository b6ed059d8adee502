"""SQLite write transactions lock up front; reads run alongside them."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from personae.daemon.store import Sessions, make_engine, upgrade_to_head
from personae.daemon.store.models import CharacterStateRow


def test_writes_take_the_lock_at_begin_and_reads_do_not_wait(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade_to_head(url)
    engine = make_engine(url, busy_timeout_s=0.2)
    try:
        sessions = Sessions(engine)
        with sessions.begin() as writer:
            writer.execute(select(CharacterStateRow)).all()  # a read, inside a write
            with sessions() as reader:  # WAL: readers are not blocked by the writer
                assert reader.execute(select(CharacterStateRow)).all() == []
                # what a second writer waits for before it gives up
                assert reader.execute(text("PRAGMA busy_timeout")).scalar() == 200
            with pytest.raises(OperationalError, match="locked"), sessions.begin() as other:
                other.execute(select(CharacterStateRow)).all()
    finally:
        engine.dispose()
