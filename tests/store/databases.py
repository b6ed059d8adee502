"""Database fixtures shared by tests/store and tests/runtime.

`db_url` is parametrised: "sqlite" (a real file in tmp_path; never skipped) and
"postgresql": a throwaway server started for the test run from the Debian binaries
(initdb + pg_ctl on 127.0.0.1, a free port, fsync off), or the server named by
PERSONAE_TEST_POSTGRES_URL (a superuser URL, e.g. a CI service). Each test gets a new
database. The PostgreSQL cases skip, saying so, only when no server is configured and
the binaries are absent (install them with scripts/ci-postgres.sh).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ENV = "PERSONAE_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def _pg_bindir() -> Path | None:
    explicit = os.environ.get("PERSONAE_PG_BINDIR")
    candidates = [explicit] if explicit else []
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in candidates:
        if d and (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A private PostgreSQL cluster in a temp dir, run as a non-root user."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="personae-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and no 'postgres' user to run PostgreSQL as")
            self.user = "postgres"
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({proc.returncode}): {proc.stderr or proc.stdout}"
            )

    def start(self) -> str:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "personae",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )
        return f"postgresql+psycopg://personae@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


#: one server per run, shared by the conftests that re-export these fixtures
_server: _Server | None = None
_server_url = ""
_server_users = 0
_templates: dict[str, str] = {}


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL of a running PostgreSQL server (its `postgres` database)."""
    global _server, _server_url, _server_users
    configured = os.environ.get(PG_ENV)
    if configured:
        yield configured
        return
    if _server is None:
        bindir = _pg_bindir()
        if bindir is None:
            pytest.skip(
                "PostgreSQL binaries (initdb, pg_ctl) not found: install them with "
                f"scripts/ci-postgres.sh, or set {PG_ENV}; the SQLite cases still ran"
            )
        server = _Server(bindir)
        _server_url = server.start()
        _server = server
    _server_users += 1
    try:
        yield _server_url
    finally:
        _server_users -= 1
        if _server_users == 0:
            _server.stop()
            _server = None
            _templates.clear()


def _admin(url: str, sql: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password,
        dbname=u.database or "postgres",
        autocommit=True,
    ) as conn:
        conn.execute(sql)


def _drop(admin_url: str, name: str) -> None:
    if _server is None:  # our own cluster is deleted whole at the end of the run
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(postgres_admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(postgres_admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        _drop(postgres_admin_url, name)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> str:
    """A database migrated to head once per run; `engine` copies it (fast)."""
    from sqlalchemy.engine import make_url

    from personae.daemon.store import upgrade_to_head

    if postgres_admin_url not in _templates:
        name = f"template_{uuid.uuid4().hex[:12]}"
        _admin(postgres_admin_url, f'CREATE DATABASE "{name}"')
        upgrade_to_head(make_url(postgres_admin_url).set(database=name))
        _templates[postgres_admin_url] = name
    return _templates[postgres_admin_url]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a PostgreSQL database when available."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'personae.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A database at head, as the shared engine the stores take (opened the way the
    daemon opens it: `open_database`)."""
    from sqlalchemy.engine import make_url

    from personae.daemon.store import open_database

    if request.param == "sqlite":
        eng = open_database(f"sqlite:///{tmp_path / 'personae.db'}")
        try:
            yield eng
        finally:
            eng.dispose()
        return
    admin = request.getfixturevalue("postgres_admin_url")
    template = request.getfixturevalue("postgres_template")
    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    eng = open_database(make_url(admin).set(database=name))
    try:
        yield eng
    finally:
        eng.dispose()
        _drop(admin, name)
