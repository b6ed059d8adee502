"""Engines and migrations against a real SQLite file (and PostgreSQL when present)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from personae.daemon.errors import ConfigError
from personae.daemon.store import (
    DatabaseUnavailableError,
    SchemaTooNewError,
    current_revision,
    default_database_url,
    head_revision,
    make_engine,
    open_database,
    parse_url,
    safe_url,
    upgrade_to_head,
)
from personae.daemon.store.migrate import _config
from personae.daemon.store.models import Base, CharacterStateRow

TABLES = {
    "alembic_version",
    "character_states",
    "memories",
    "turns",
    "character_versions",
    "deployments",
    "experiments",
    "experiment_variants",
    "experiment_metrics",
    "goal_runs",
}


def _tables(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_upgrade_creates_every_table_and_is_idempotent(db_url: str) -> None:
    assert upgrade_to_head(db_url) == head_revision()
    assert _tables(db_url) == TABLES
    assert upgrade_to_head(db_url) == head_revision()  # second start: nothing to do


def test_models_and_migrations_describe_the_same_schema(engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_downgrade_to_base_and_back(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        upgrade_to_head(eng)
        cfg = _config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert _tables(db_url) <= {"alembic_version"}
        upgrade_to_head(eng)
        assert _tables(db_url) == TABLES
    finally:
        eng.dispose()


def test_goal_runs_upgrade_an_existing_0001_database(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        cfg = _config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
        assert "goal_runs" not in _tables(db_url)
        assert upgrade_to_head(eng) == head_revision()
        assert _tables(db_url) == TABLES
    finally:
        eng.dispose()


def test_newer_schema_is_refused_and_nothing_is_touched(db_url: str) -> None:
    eng = open_database(db_url)
    try:
        with eng.begin() as conn:
            conn.execute(
                CharacterStateRow.__table__.insert().values(
                    character_id="mara",
                    player_id="p1",
                    emotion={"joy": 1.0},
                    intensity=0.5,
                    trust=0.1,
                    affinity=0.2,
                    updated_at=datetime.now(UTC),
                )
            )
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        eng.dispose()

    with pytest.raises(SchemaTooNewError) as err:
        upgrade_to_head(db_url)
    assert err.value.found == "9999_from_the_future"
    assert "newer than this personae knows" in str(err.value)
    assert isinstance(err.value, ConfigError)
    with pytest.raises(SchemaTooNewError):
        open_database(db_url)
    with pytest.raises(SchemaTooNewError):
        open_database(db_url, migrate=False)

    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            assert current_revision(conn) == "9999_from_the_future"
            rows = conn.execute(text("SELECT character_id, trust FROM character_states")).all()
        assert [tuple(r) for r in rows] == [("mara", 0.1)]
    finally:
        eng.dispose()


def test_migrate_false_refuses_an_unmigrated_database(db_url: str) -> None:
    with pytest.raises(ConfigError, match="run the migrations"):
        open_database(db_url, migrate=False)
    upgrade_to_head(db_url)
    open_database(db_url, migrate=False).dispose()


def test_concurrent_start_ups_migrate_once(db_url: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(upgrade_to_head(db_url, busy_timeout_s=30))
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == [head_revision()] * 3
    assert _tables(db_url) == TABLES


def test_first_start_ups_on_a_new_sqlite_file_all_succeed(tmp_path) -> None:
    """Processes starting together on a file that does not exist yet all ask SQLite to
    switch it to WAL; SQLite answers all but one BUSY at once, without waiting. Each
    start-up must wait its turn instead (one in five failed before)."""
    for attempt in range(25):
        url = f"sqlite:///{tmp_path / f'new-{attempt}.db'}"
        errors: list[BaseException] = []

        def start(url: str = url, errors: list[BaseException] = errors) -> None:
            try:
                upgrade_to_head(url, busy_timeout_s=30)
            except BaseException as exc:  # collected and re-raised in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [], f"attempt {attempt}"


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'deep' / 'er' / 'p.db'}", busy_timeout_s=2.5)
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500
        assert (tmp_path / "deep" / "er" / "p.db").exists()
    finally:
        eng.dispose()


def test_foreign_keys_are_enforced(engine) -> None:
    from sqlalchemy.exc import IntegrityError

    from personae.daemon.store.models import DeploymentRow

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            DeploymentRow.__table__.insert().values(
                character_id="mara",
                environment="prod",
                version_id=12345,
                action="deploy",
                created_at=datetime.now(UTC),
            )
        )


def test_times_come_back_aware_in_utc(engine) -> None:
    from sqlalchemy.orm import Session

    local = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))
    with Session(engine) as s, s.begin():
        s.add(
            CharacterStateRow(
                character_id="c",
                player_id="p",
                emotion={"joy": 1.0},
                intensity=0.1,
                trust=0.0,
                affinity=0.0,
                updated_at=local,
            )
        )
    with Session(engine) as s:
        got = s.get_one(CharacterStateRow, ("c", "p")).updated_at
    assert got == local and got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_urls() -> None:
    assert parse_url("postgresql://u:secret@db/personae").drivername == "postgresql+psycopg"
    assert "secret" not in safe_url("postgresql://u:secret@db/personae")
    with pytest.raises(ConfigError, match="unsupported backend"):
        parse_url("mysql://u@h/db")
    with pytest.raises(ConfigError, match="not a database URL"):
        parse_url("not a url")
    assert default_database_url(__import__("pathlib").Path("/var/cache/p")) == (
        "sqlite:////var/cache/p/personae.db"
    )


def test_unreachable_postgres_is_a_clear_config_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    with pytest.raises(DatabaseUnavailableError, match="cannot open database"):
        upgrade_to_head(f"postgresql://nobody:pw@127.0.0.1:{port}/x", busy_timeout_s=1)
