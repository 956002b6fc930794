"""Schema migrations through Alembic's command API, shipped inside the package.

``jobtrack migrate``, ``serve`` and ``worker`` (unless ``--no-migrate``) and the tests
all call :func:`upgrade`; no ``alembic.ini`` is needed at run time. Processes that start
at once on one new database migrate one after the other (:func:`upgrade` holds a lock).

Every other command and ``App`` call :func:`prepare` (or the listings
:func:`jobtrack.store.reader.reading`) before first use: a new embedded
(SQLite) database is migrated there and then; a PostgreSQL database or an outdated schema
is reported in one line naming the command to run. It reads the stored revision with the
caller's own engine and never imports Alembic unless a migration is due, so a command's
start-up stays quick.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url

from jobtrack.errors import JobtrackError
from jobtrack.store.connect import dialect_name, sync_url

if TYPE_CHECKING:
    from alembic.config import Config

    from jobtrack.store.engine import Database
    from jobtrack.store.reader import Reads

MIGRATIONS = Path(__file__).parent / "migrations"

#: key of the PostgreSQL advisory lock that serialises migrations ("jobtrack" in hex-ish)
_PG_LOCK_KEY = 0x6A6F62747261636B
#: seconds a process waits for another one's SQLite migration to finish
_SQLITE_LOCK_WAIT = 120


class DatabaseMissing(JobtrackError):
    """There is no database file at this path yet."""

    code = "database_missing"


class SchemaNotReady(JobtrackError):
    """The database schema is not the one this jobtrack needs: run `jobtrack migrate`."""

    code = "schema_not_ready"


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision``, one process at a time: on PostgreSQL
    under an advisory lock, on SQLite in one exclusive transaction (a process that waited
    finds the work done and does nothing)."""
    from alembic import command

    _ensure_sqlite_dir(url)
    with _locked_connection(url) as conn:
        command.upgrade(alembic_config(url, conn), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    with _locked_connection(url) as conn:
        command.downgrade(alembic_config(url, conn), revision)


@contextmanager
def _locked_connection(url: str) -> Iterator[Connection]:
    """A connection that alone may migrate the database until it is closed."""
    if make_url(url).get_backend_name() == "sqlite":
        # the driver's own transaction handling off: BEGIN EXCLUSIVE below is the one
        # transaction, and SQLite's DDL is transactional, so a migration is all or nothing
        engine = create_engine(sync_url(url), isolation_level="AUTOCOMMIT",
                               connect_args={"timeout": _SQLITE_LOCK_WAIT})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
        finally:
            engine.dispose()
        return
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            # a session lock, taken and released outside the migration's transaction
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield conn
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_current(url: str) -> bool:
    return current(url) == head()


_REVISION = re.compile(r"^(down_)?revision\b[^=]*=\s*['\"]?([\w-]+|None)['\"]?", re.M)


@functools.cache
def head_revision() -> str:
    """The newest revision, read from the migration files without importing Alembic
    (the one revision no other names as its ``down_revision``)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text()):
            (parents if down else revisions).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None: not SQLite, or in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


async def prepare(db: Database, *, create: bool = True) -> None:
    """Make the database ready for this jobtrack before its first use.

    A new SQLite database (no file, or a file without tables) is migrated; with
    ``create=False`` (read-only commands) a missing file raises :class:`DatabaseMissing`
    and is not created. A PostgreSQL database that was never migrated, or an outdated
    schema, raises :class:`SchemaNotReady` naming ``jobtrack migrate``.
    (:func:`jobtrack.store.reader.reading` does the same for a sync connection.)
    """
    if is_new_file(db.url, create=create):
        await asyncio.to_thread(upgrade, db.url)
        return
    async with db.read() as conn:
        stored = await stored_revision(conn)
    if migration_due(db.url, stored):
        await asyncio.to_thread(upgrade, db.url)


def is_new_file(url: str, *, create: bool) -> bool:
    """True when ``url`` is a SQLite file not made yet (to migrate, which creates it);
    with ``create=False`` that raises :class:`DatabaseMissing` instead."""
    path = sqlite_path(url)
    if path is None or path.exists():
        return False
    if not create:
        raise DatabaseMissing(
            f"no database at {path} yet: it is created by the first job enqueued, "
            "`jobtrack migrate`, or `jobtrack worker`/`serve`")
    return True


def migration_due(url: str, stored: str | None) -> bool:
    """Given the database's ``stored`` revision: False when it is the head; True for a
    SQLite database without tables (migrated there and then); :class:`SchemaNotReady`
    otherwise (an outdated schema, or a PostgreSQL database never migrated)."""
    if stored == head_revision():
        return False
    backend = dialect_name(url)
    if stored is None and backend == "sqlite":
        return True
    where = "never migrated" if stored is None else f"at revision {stored}"
    raise SchemaNotReady(
        f"the database is {where}; this jobtrack needs revision {head_revision()}: run "
        "`jobtrack migrate` (with the same --database-url)")


async def stored_revision(conn: Reads) -> str | None:
    """The revision recorded in the database (None: no ``alembic_version`` table)."""
    exists = ("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
              if conn.dialect.name == "sqlite"
              else "SELECT to_regclass('alembic_version') IS NOT NULL")
    found: Any = (await conn.exec_driver_sql(exists)).scalar()
    if not found:
        return None
    value: Any = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.resolve().parent.mkdir(parents=True, exist_ok=True)
