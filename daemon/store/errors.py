"""Errors of the persistence layer.

ConfigError
├── DatabaseUnavailableError   the database cannot be opened or reached
└── SchemaTooNewError          the database was migrated by a newer personae
"""

from __future__ import annotations

from personae.daemon.errors import ConfigError


class DatabaseUnavailableError(ConfigError):
    code = "database_unavailable"


class SchemaTooNewError(ConfigError):
    """The database carries a schema revision this code does not know.

    Nothing is changed: the daemon refuses to start instead of writing rows an older
    schema does not describe.
    """

    code = "schema_too_new"

    def __init__(self, *, found: str, head: str, url: str) -> None:
        super().__init__(
            f"database {url} has schema revision {found!r}, newer than this personae "
            f"knows (head {head!r}); upgrade personae, or point database_url at another "
            "database"
        )
        self.found = found
        self.head = head
