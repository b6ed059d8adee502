"""Alembic environment: always run programmatically with a connection handed in.

`upgrade_to_head` puts an open connection in `config.attributes["connection"]`; the
migrations run inside its transaction (transactional DDL on both backends).
"""

from __future__ import annotations

from alembic import context

from personae.daemon.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "personae migrations run through personae.daemon.store.upgrade_to_head(url), "
        "not the alembic command line"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
