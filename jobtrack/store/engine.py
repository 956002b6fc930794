"""The database handle: one async engine per process, and the two ways to use it.

``Database.write()`` opens a write transaction (``BEGIN IMMEDIATE`` on SQLite, so two
writers queue on the lock instead of failing on upgrade); ``Database.read()`` gives an
autocommit connection, so a read is one round trip with no BEGIN/ROLLBACK around it.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobtrack.errors import DatabaseUnavailable, WriteConflict


def json_dumps(value: Any) -> str:
    """How JSON columns are written (also by ``bulk``'s SQLite path)."""
    return orjson.dumps(value).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a JSON column numeric affinity: a bare number comes back as a number
    if isinstance(value, (int, float)):
        return value
    return orjson.loads(value)


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a user's ``sqlite:///`` or ``postgresql://`` URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend.startswith("postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(
        f"unsupported database URL {parsed.drivername!r}: use sqlite:///PATH or "
        "postgresql://USER@HOST/DB"
    )


def sync_url(url: str) -> str:
    """The synchronous driver URL (Alembic migrations, tests' set-up)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


#: PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled
#: back whole and may be retried as it is
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _is_write_conflict(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached (not bad SQL)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return any(
            s in text
            for s in ("connection", "server closed", "terminating", "shutting down",
                      "could not", "starting up", "timeout", "timed out")
        )
    # PoolTimeout: every pooled connection is busy and none freed up in time
    return isinstance(exc, (ConnectionError, TimeoutError, OSError, PoolTimeout))


class Database:
    """An async engine for one database URL, and its transaction helpers."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        backend = make_url(url).get_backend_name()
        self.dialect = "postgresql" if backend.startswith("postgres") else backend
        self.is_sqlite = self.dialect == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps,
                                  "json_deserializer": _json_loads}
        if self.is_sqlite:
            kwargs["isolation_level"] = "AUTOCOMMIT"
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # no overflow: an overflow connection is closed when it is given back, so a
            # burst above pool_size would open (and PostgreSQL fork) a backend per request
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_pre_ping=False,
                          pool_recycle=3600, pool_timeout=10)
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # SQLite has one writer at a time: writers of one process queue here, in order,
        # instead of in SQLite's busy handler (which sleeps up to 100 ms between tries)
        self._write_lock: asyncio.Lock | None = None

    def _sqlite_write_lock(self) -> asyncio.Lock:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on error."""
        try:
            async with AsyncExitStack() as stack:
                if self.is_sqlite:
                    await stack.enter_async_context(self._sqlite_write_lock())
                conn = await stack.enter_async_context(self.engine.connect())
                if self.is_sqlite:
                    await conn.exec_driver_sql("BEGIN IMMEDIATE")
                    try:
                        yield conn
                    except BaseException:
                        await conn.exec_driver_sql("ROLLBACK")
                        raise
                    await conn.exec_driver_sql("COMMIT")
                else:
                    async with conn.begin():
                        yield conn
        except (DBAPIError, OSError) as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            if _is_write_conflict(exc):
                raise WriteConflict(
                    "this change collided with a concurrent one and was rolled back; "
                    "nothing was written: retry it") from exc
            raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection for reads: one round trip per statement."""
        try:
            async with self.engine.connect() as conn:
                if not self.is_sqlite:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
        except (DBAPIError, OSError) as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise

    async def ping(self) -> bool:
        """True when the database answers."""
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
