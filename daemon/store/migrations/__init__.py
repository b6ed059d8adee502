"""Alembic migrations, shipped in the package and run by `upgrade_to_head`."""
