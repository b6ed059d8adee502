from tests.store.databases import (
    db_url,
    engine,
    postgres_admin_url,
    postgres_template,
    postgres_url,
)

__all__ = ["db_url", "engine", "postgres_admin_url", "postgres_template", "postgres_url"]
