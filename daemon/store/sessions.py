"""Sessions for reading and for writing.

    sessions = Sessions(engine)
    with sessions() as s: ...          # read: plain BEGIN (SQLite: readers never wait)
    with sessions.begin() as s: ...    # write: commits on exit; SQLite BEGIN IMMEDIATE

On SQLite a write transaction takes the write lock when it begins, so a read-then-write
(decay an emotion, then store it) waits its turn under the busy timeout instead of
failing with SQLITE_BUSY when two writers upgrade their read locks together. Reads
stay deferred, so in WAL mode they run alongside a writer. On PostgreSQL both are
ordinary transactions.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

#: execution option that marks a connection's transactions as writes
WRITE_OPTION = "personae_write"


class Sessions:
    def __init__(self, engine: Engine) -> None:
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    def __call__(self) -> Session:
        """A session for reading (use as a context manager)."""
        return self._read()

    def begin(self) -> AbstractContextManager[Session]:
        """A session in a write transaction, committed on success, rolled back on error."""
        return self._write.begin()
