"""Shared fixtures: a real database per test, on SQLite and (when configured) PostgreSQL.

PostgreSQL: ``JOBTRACK_TEST_POSTGRES_URL`` points at a server (any database on it); the
schema is migrated once into a template database, and each test gets its own
``CREATE DATABASE ... TEMPLATE`` copy. In CI (``CI`` set) an unreachable server fails the
run instead of skipping the PostgreSQL half of the suite.

SQLite: the schema is migrated once into a template file, copied per test.

Helpers every folder shares are in the ``support`` package (``tests/support``).
"""

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from jobtrack.settings import Settings
from jobtrack.store import migrate
from jobtrack.store.engine import Database
from support.keys import make_keys

PG_ENV = "JOBTRACK_TEST_POSTGRES_URL"
IN_CI = bool(os.environ.get("CI"))


def _admin_conninfo(url: str) -> str:
    u = make_url(url).set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


def _db_url(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> str | None:
    """The PostgreSQL server for tests, or None (skip) when not configured locally."""
    url = os.environ.get(PG_ENV)
    if not url:
        if IN_CI:
            pytest.fail(f"{PG_ENV} must be set in CI: the PostgreSQL suite may not be skipped")
        return None
    try:
        with psycopg.connect(_admin_conninfo(url), autocommit=True, connect_timeout=5) as c:
            c.execute("SELECT 1")
    except psycopg.Error as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    return url


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str | None) -> Iterator[str | None]:
    """A migrated template database, built once per session."""
    if pg_server_url is None:
        yield None
        return
    name = f"jobtrack_tpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(pg_server_url), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(_db_url(pg_server_url, name))
    yield name
    with psycopg.connect(_admin_conninfo(pg_server_url), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _new_pg_db(server: str, template: str) -> str:
    name = f"jobtrack_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(server), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def _drop_pg_db(server: str, name: str) -> None:
    with psycopg.connect(_admin_conninfo(server), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database copied from the migrated template (dropped afterwards), or a skip."""
    server = request.getfixturevalue("pg_server_url")
    if server is None:
        pytest.skip(f"{PG_ENV} not set: PostgreSQL tests skipped (they run in CI)")
    template = request.getfixturevalue("pg_template")
    name = _new_pg_db(server, template)
    yield _db_url(server, name)
    _drop_pg_db(server, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
) -> Iterator[str]:
    """A freshly migrated database URL, once per backend."""
    if request.param == "sqlite":
        path = tmp_path / "jobtrack.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    yield from _fresh_pg_url(request)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly migrated PostgreSQL database URL, for PostgreSQL-only tests."""
    yield from _fresh_pg_url(request)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, lease_seconds=5, reap_interval_seconds=0.2,
                    progress_interval_seconds=0.0)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture
async def keys(db: Database) -> dict[str, str]:
    """Raw keys by name: ``a`` (tenant-a), ``b`` (tenant-b), ``admin`` (ops, admin)."""
    return await make_keys(db)
