"""Engine creation: SQLite (the default, one file, WAL) or PostgreSQL by URL.

SQLite connections get `journal_mode=WAL` (readers never block the writer),
`foreign_keys=ON`, `synchronous=NORMAL` (safe with WAL) and a busy timeout, and
SQLAlchemy (not the sqlite3 module) decides where transactions begin: write
transactions (`Sessions.begin`, connections with the `personae_write` option) start
with `BEGIN IMMEDIATE` and so take the write lock up front, waiting for it under the
busy timeout; reads start with a plain `BEGIN` and run alongside the writer.

`postgresql://` URLs use psycopg 3 (`postgresql+psycopg://`); psycopg2 is not needed.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from personae.daemon.errors import ConfigError
from personae.daemon.store.sessions import WRITE_OPTION

DEFAULT_BUSY_TIMEOUT_S = 5.0


def default_database_url(cache_dir: Path) -> str:
    """`sqlite:///<cache_dir>/personae.db`, the default of `Settings.database_url`."""
    return f"sqlite:///{Path(cache_dir).expanduser().resolve() / 'personae.db'}"


def parse_url(url: str | URL) -> URL:
    """Parse and normalise a database URL (`postgresql://` means psycopg 3)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ConfigError(f"database_url {url!r} is not a database URL: {exc}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database_url {safe_url(parsed)}: unsupported backend "
            f"{parsed.get_backend_name()!r}; use sqlite:/// or postgresql://"
        )
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<invalid url>"
    return parsed.render_as_string(hide_password=True)


def make_engine(url: str | URL, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """A pooled engine for `url`, configured for concurrent use from worker threads.

    The SQLite file's folder is created if missing. Nothing is migrated here: call
    `upgrade_to_head` (or `open_database`) once at start-up.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_s)
    return create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, int(busy_timeout_s))},
    )


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the database folder {folder}: {exc}") from exc
    engine = create_engine(
        url,
        # the pool hands a connection to one thread at a time
        connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
    )
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy, not the sqlite3 module, decide where transactions begin
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            if not in_memory:
                _enter_wal(cur, busy_timeout_s)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _enter_wal(cur: Any, busy_timeout_s: float) -> None:
    """Switch the file to WAL. On a new file several processes starting at once all ask
    for the switch, and SQLite answers BUSY at once (no busy handler) to all but one:
    ask again, within the busy timeout, until the one that won has switched it."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
