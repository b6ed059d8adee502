"""Schema migrations, run programmatically at start-up.

    engine = open_database(settings.database_url)   # make_engine + upgrade_to_head

The migrations ship inside the package (`personae.daemon.store.migrations`), so an
installed daemon needs no alembic.ini. Before upgrading, the revision stored in the
database is checked against the revisions this code knows: an unknown one means a
newer personae migrated it, and `SchemaTooNewError` stops the start-up with nothing
written. On PostgreSQL an advisory lock serialises replicas that start together; on
SQLite the migration is a write transaction (`BEGIN IMMEDIATE`) and does the same.
"""

from __future__ import annotations

import logging
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from personae.daemon.store.engine import (
    DEFAULT_BUSY_TIMEOUT_S,
    make_engine,
    safe_url,
)
from personae.daemon.store.errors import DatabaseUnavailableError, SchemaTooNewError
from personae.daemon.store.sessions import WRITE_OPTION

log = logging.getLogger(__name__)

#: pg_advisory_xact_lock key: "personae" in ASCII, fits a signed 64-bit int
_PG_LOCK_KEY = 0x706572736F6E6165


def _config() -> Config:
    cfg = Config()
    location = resources.files("personae.daemon.store") / "migrations"
    cfg.set_main_option("script_location", str(location))
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision stored in the database; None for an empty database."""
    return MigrationContext.configure(conn).get_current_revision()


def _check_known(conn: Connection, url: str) -> str | None:
    script = ScriptDirectory.from_config(_config())
    found = current_revision(conn)
    if found is None:
        return None
    known = {rev.revision for rev in script.walk_revisions()}
    if found not in known:
        raise SchemaTooNewError(found=found, head=head_revision(), url=url)
    return found


def upgrade_to_head(
    target: str | URL | Engine, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> str:
    """Create or upgrade the schema to the newest revision; return that revision.

    `target` is a database URL or an engine made by `make_engine`. Idempotent and safe
    to call from several processes at once.
    """
    engine = (
        target if isinstance(target, Engine) else make_engine(target, busy_timeout_s=busy_timeout_s)
    )
    try:
        return _upgrade(engine)
    finally:
        if engine is not target:
            engine.dispose()


def _upgrade(engine: Engine) -> str:
    url = safe_url(engine.url)
    cfg = _config()
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            found = _check_known(conn, url)
            head = head_revision()
            if found != head:
                log.info("migrating database %s from %s to %s", url, found or "empty", head)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return head
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot open database {url}: {exc.orig}") from exc


def open_database(
    url: str | URL, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S, migrate: bool = True
) -> Engine:
    """The engine the daemon shares between its stores, with the schema at head.

    With `migrate=False` the schema is only checked: an empty or outdated database is
    a `ConfigError` instead of being upgraded (for deployments where migrations run
    as a separate step).
    """
    engine = make_engine(url, busy_timeout_s=busy_timeout_s)
    try:
        if migrate:
            _upgrade(engine)
        else:
            _require_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _require_head(engine: Engine) -> None:
    from personae.daemon.errors import ConfigError

    url = safe_url(engine.url)
    try:
        with engine.connect() as conn:
            found = _check_known(conn, url)
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot open database {url}: {exc.orig}") from exc
    head = head_revision()
    if found != head:
        raise ConfigError(
            f"database {url} is at schema revision {found or 'none'}, this personae needs "
            f"{head}; run the migrations (personae.daemon.store.upgrade_to_head)"
        )
