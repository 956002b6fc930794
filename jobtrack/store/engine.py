"""The database handle: one async engine per process, and the two ways to use it.
(What every engine shares, async or not, is :mod:`jobtrack.store.connect`.)

``Database.write()`` opens a write transaction (``BEGIN IMMEDIATE`` on SQLite, so two
writers queue on the lock instead of failing on upgrade); ``Database.read()`` gives an
autocommit connection, so a read is one round trip with no BEGIN/ROLLBACK around it.

A PostgreSQL server that hangs instead of refusing (frozen, its host swapping, a network
that drops packets silently) would hold every caller for as long. With
:class:`Timeouts` (the API's), each wait is bounded: opening a connection
(``connect_timeout``), a statement (the server's ``statement_timeout``, and, for a server
too hung to enforce it, the client stops waiting for the answer ``ANSWER_MARGIN`` seconds
later and drops the connection), and a pooled connection (``pool_timeout``). Each ends in
:class:`~jobtrack.errors.DatabaseUnavailable` (503), and the pool reconnects by itself.
"""

import asyncio
import functools
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from jobtrack.errors import DatabaseUnavailable, WriteConflict
from jobtrack.store.connect import (
    async_url,
    dialect_name,
    engine_options,
    is_unavailable,
    sqlite_pragmas,
)
from jobtrack.store.connect import sync_url as sync_url  # (for its importers)

if TYPE_CHECKING:  # (psycopg and pydantic-settings load only when used: CLI start-up)
    from jobtrack.settings import Settings

#: how much longer than its statement timeout the client waits for a statement's answer
ANSWER_MARGIN = 2.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on waiting for PostgreSQL, in seconds (see the module doc)."""

    connect: float
    statement: float
    pool: float

    @classmethod
    def of(cls, settings: "Settings") -> Self:
        return cls(connect=settings.db_connect_timeout_seconds,
                   statement=settings.db_statement_timeout_seconds,
                   pool=settings.db_pool_timeout_seconds)

    @property
    def answer(self) -> float:
        """The longest wait for one answer of the server."""
        return self.statement + ANSWER_MARGIN


@functools.cache
def _bounded_connection_class() -> Any:
    """A psycopg connection that waits at most ``answer_timeout`` seconds for any one
    answer of the server; then it closes (the pool drops it) and raises
    ``OperationalError`` ("timed out"). Built on first use: psycopg is only imported for
    PostgreSQL."""
    import psycopg

    class _BoundedConnection(psycopg.AsyncConnection[Any]):
        answer_timeout: float | None = None

        async def wait(self, gen: Any, interval: float = 0.1,
                       timeout: float | None = None) -> Any:
            bound = self.answer_timeout
            if timeout is not None or bound is None:
                return await super().wait(gen, interval, timeout)
            try:
                return await super().wait(gen, interval, bound)
            except psycopg.OperationalError as exc:
                if type(exc).__name__ != "_WaitTimeout":  # psycopg's own, when a wait expires
                    raise
                # the statement is still in flight: this connection cannot be used again
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"the database did not answer within {bound:g} s: timed out") from None

    return _BoundedConnection


async def _bounded_connect(*args: Any, answer_timeout: float, **kwargs: Any) -> Any:
    conn = await _bounded_connection_class().connect(*args, **kwargs)
    conn.answer_timeout = answer_timeout
    return conn


#: PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled
#: back whole and may be retried as it is
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _is_write_conflict(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _driver_unavailable(exc: BaseException) -> bool:
    """A psycopg error (not wrapped by SQLAlchemy) that means the server is unreachable."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError | OSError | TimeoutError)


async def _give_back(fairy: Any, driver: Any) -> None:
    """Return a connection of :meth:`Database.driver_read` to the pool out of autocommit;
    one that is broken or still busy with a statement (a cancelled read) is dropped."""
    from psycopg.pq import TransactionStatus

    if not driver.closed and driver.info.transaction_status == TransactionStatus.IDLE:
        await driver.set_autocommit(False)
        await greenlet_spawn(fairy.close)  # the pool's check-in (its reset is a no-op here)
    else:
        await greenlet_spawn(fairy.invalidate)
        await greenlet_spawn(fairy.close)


class Database:
    """An async engine for one database URL, and its transaction helpers."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False,
                 timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.dialect = dialect_name(url)
        self.is_sqlite = self.dialect == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, **engine_options(url)}
        if not self.is_sqlite:
            # no overflow: an overflow connection is closed when it is given back, so a
            # burst above pool_size would open (and PostgreSQL fork) a backend per request
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_pre_ping=False,
                          pool_recycle=3600, pool_timeout=10)
            if timeouts is not None:
                kwargs["pool_timeout"] = timeouts.pool
                kwargs["connect_args"] = {
                    # libpq counts whole seconds, and at least 2
                    "connect_timeout": max(2, math.ceil(timeouts.connect)),
                    "options": f"-c statement_timeout={math.ceil(timeouts.statement * 1000)}",
                    "async_creator_fn": functools.partial(
                        _bounded_connect, answer_timeout=timeouts.answer),
                }
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", sqlite_pragmas)
        # SQLite has one writer at a time: writers of one process queue here, in order,
        # instead of in SQLite's busy handler (which sleeps up to 100 ms between tries)
        self._write_lock: asyncio.Lock | None = None
        self._ping: asyncio.Task[bool] | None = None  # the one ping in flight
        #: statements run on the driver connection (:class:`DriverStatement`), which
        #: SQLAlchemy's events do not see: by their SQL text
        self.driver_statements: list[str] = []
        self.record_driver_statements = False

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
        except (DBAPIError, OSError, PoolTimeout) as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            if _is_write_conflict(exc):
                raise WriteConflict(
                    "this change collided with a concurrent one and was rolled back; "
                    "nothing was written: retry it") from exc
            raise

    @asynccontextmanager
    async def write_one(self) -> AsyncIterator[AsyncConnection]:
        """A connection for ONE write statement that is complete by itself (a data-modifying
        ``WITH`` writing a row and its event together): autocommitted on PostgreSQL, one
        round trip instead of ``BEGIN``, the statement and ``COMMIT``; a write transaction
        on SQLite, whose writers queue on one lock. A caller that runs more than one
        statement here gets no atomicity between them: use :meth:`write`."""
        # PostgreSQL: the read connection is that autocommit connection already
        async with (self.write() if self.is_sqlite else self.read()) as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection for reads: one round trip per statement."""
        try:
            async with self.engine.connect() as conn:
                if not self.is_sqlite:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
        except (DBAPIError, OSError, PoolTimeout) as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise

    @asynccontextmanager
    async def driver_read(self) -> AsyncIterator[Any]:
        """PostgreSQL only: the pooled psycopg connection itself, in autocommit, for the
        hottest reads (:class:`DriverStatement`). The same pool, timeouts and errors as
        :meth:`read`, without SQLAlchemy's connection, execution context and result
        objects around the one round trip. The connection goes back to the pool out of
        autocommit, as :meth:`read`'s does."""
        if self.is_sqlite:
            raise RuntimeError("driver_read is for PostgreSQL; use read()")
        try:
            fairy = await self.engine.raw_connection()
        except Exception as exc:  # (the pool hands out the driver's own errors)
            if is_unavailable(exc) or _driver_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise
        driver: Any = fairy.driver_connection
        try:
            await driver.set_autocommit(True)
            yield driver
        except BaseException as exc:
            await _give_back(fairy, driver)
            if isinstance(exc, Exception) and _driver_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise
        await _give_back(fairy, driver)

    async def ping(self, timeout: float | None = None) -> bool:
        """True when the database answers (within ``timeout`` seconds, if given).

        A ping still waiting at the timeout is not cancelled (cancelling a statement
        waits for the server too) but left to end by itself, within the engine's own
        timeouts; until then the next pings wait for that same one, so a probe repeated
        against a hung database holds one connection, not one per probe."""
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(self._select_one())
        done, _ = await asyncio.wait({self._ping}, timeout=timeout)
        return bool(done) and self._ping.result()

    async def _select_one(self) -> bool:
        try:
            async with self.read() as conn:
                await conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        if self._ping is not None and not self._ping.done():
            self._ping.cancel()
        await self.engine.dispose()
