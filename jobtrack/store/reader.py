"""Reads without an event loop, for a process that reads once and exits (the CLI's
listings): the store's own async read functions, run on a synchronous Core connection.

A store read (``list_jobs``, ``list_flows``, ``list_keys``...) awaits nothing but its
connection. On a :class:`SyncConnection` each of those awaits is already done when it
starts, so :func:`run_read` drives the coroutine to its end without asyncio. The query,
the tables and the decoding of rows are the store's, unchanged; the engine is made with
the same options as :class:`~jobtrack.store.engine.Database`'s
(:mod:`jobtrack.store.connect`), and the schema is checked against the same migrations
(:func:`jobtrack.store.migrate.prepare`'s rules). What it spares a command is what it
paid before its first query: ``sqlalchemy.ext.asyncio`` (which imports the ORM), the
async driver and an event loop.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from jobtrack.errors import DatabaseUnavailable
from jobtrack.store import migrate
from jobtrack.store.connect import engine_options, is_unavailable, sqlite_pragmas, sync_url

if TYPE_CHECKING:
    from sqlalchemy import Connection, CursorResult, Dialect, Executable
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

#: what a store read runs on: the async engine's connection or a :class:`SyncConnection`
Reads: TypeAlias = "AsyncConnection | SyncConnection"


class SyncConnection:
    """A synchronous Core connection behind the awaitable methods store reads use."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Executable,
                      parameters: dict[str, Any] | None = None) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str) -> CursorResult[Any]:
        return self._conn.exec_driver_sql(statement)


def run_read(read: Coroutine[Any, Any, T]) -> T:
    """The result of a store read on a :class:`SyncConnection`, without an event loop."""
    try:
        read.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    read.close()
    raise RuntimeError("this read awaits more than its connection: run it on a Database")


@contextmanager
def reading(url: str, *, create: bool = False) -> Iterator[SyncConnection]:
    """A connection for reads (autocommit) to a database ready for this jobtrack.

    The same rules as :func:`~jobtrack.store.migrate.prepare`: a new SQLite database is
    migrated (a missing file only with ``create``, else :class:`DatabaseMissing`); an
    outdated or never migrated PostgreSQL schema raises ``SchemaNotReady``. A database
    that cannot be reached raises :class:`DatabaseUnavailable`, as ``Database.read`` does.
    """
    if migrate.is_new_file(url, create=create):
        migrate.upgrade(url)
    engine = create_engine(sync_url(url), **{"isolation_level": "AUTOCOMMIT",
                                             **engine_options(url)})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas)
    try:
        with engine.connect() as raw:
            conn = SyncConnection(raw)
            if migrate.migration_due(url, run_read(migrate.stored_revision(conn))):
                migrate.upgrade(url)
            yield conn
    except (DBAPIError, OSError, PoolTimeout) as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable() from exc
        raise
    finally:
        engine.dispose()
