"""Persistence: SQLAlchemy 2 models, engines (SQLite WAL or PostgreSQL) and migrations.

    engine = open_database(url)     # once at start-up; raises SchemaTooNewError
    StateStore(engine), MemoryStore(engine, ...), Registry(engine), ...   # runtime

All calls are synchronous; the session runs them in a worker thread. The engine is
thread-safe and shared by every store.
"""

from personae.daemon.store.engine import (
    DEFAULT_BUSY_TIMEOUT_S,
    default_database_url,
    make_engine,
    parse_url,
    safe_url,
)
from personae.daemon.store.errors import DatabaseUnavailableError, SchemaTooNewError
from personae.daemon.store.migrate import (
    current_revision,
    head_revision,
    open_database,
    upgrade_to_head,
)
from personae.daemon.store.sessions import Sessions

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "DatabaseUnavailableError",
    "SchemaTooNewError",
    "Sessions",
    "current_revision",
    "default_database_url",
    "head_revision",
    "make_engine",
    "open_database",
    "parse_url",
    "safe_url",
    "upgrade_to_head",
]
