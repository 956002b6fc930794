"""The event log as a gap-safe reader sees it (``jobtrack.events.ordered``): events after
an id, and the two snapshot bounds that prove a missing id will never commit.

Two sources, one interface (:class:`EventLog`):

- :class:`SqlEventLog` reads through a SQLAlchemy connection of the pool (SQLite, and the
  webhook dispatcher inside its own transaction);
- :class:`PgEventFeed` is one dedicated psycopg connection that both LISTENs on
  ``jobtrack_events`` (a statement trigger NOTIFYs it on every insert into ``events``)
  and reads the log with prepared statements. An event hub on PostgreSQL lives on it:
  a notification is answered by one round trip on the same connection, with no pool
  checkout and no statement compilation on the way (docs/targets.md P5).
"""

from __future__ import annotations

import re
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import orjson
import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_loads

from jobtrack.store.events import StoredEvent, read_after, snapshot_xmax, snapshot_xmin

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

CHANNEL = "jobtrack_events"
#: dead connections are noticed within about idle + interval * count seconds
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3}
_COLUMNS = ("id, tenant, type, at, job_id, flow_id, queue_name, from_status, to_status, "
            "step, attempt, actor, data")
_AFTER = f"SELECT {_COLUMNS} FROM events WHERE id > %s ORDER BY id LIMIT %s"
_BETWEEN = f"SELECT {_COLUMNS} FROM events WHERE id > %s AND id <= %s ORDER BY id LIMIT %s"
_XMAX = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text"
_XMIN = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"


class EventLog(Protocol):
    """What the gap-safe reader needs from the event log."""

    async def after(
        self, after_id: int, *, limit: int, upto: int | None = None
    ) -> list[StoredEvent]: ...

    async def xmax(self) -> int: ...

    async def xmin(self) -> int: ...


class SqlEventLog:
    """The event log through a SQLAlchemy connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def after(
        self, after_id: int, *, limit: int, upto: int | None = None
    ) -> list[StoredEvent]:
        return await read_after(self.conn, after_id, limit=limit, upto=upto)

    async def xmax(self) -> int:
        return await snapshot_xmax(self.conn)

    async def xmin(self) -> int:
        return await snapshot_xmin(self.conn)


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy form) or ``postgres://`` as libpq takes it."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)  # uuid.UUID -> its string form


def _event(row: TupleRow) -> StoredEvent:
    (id_, tenant, type_, at, job_id, flow_id, queue_name, from_status, to_status, step,
     attempt, actor, data) = row
    at_value: datetime = at
    return StoredEvent(
        id=id_, tenant=tenant, type=type_, at=at_value, data=data,
        job_id=_text(job_id), flow_id=_text(flow_id), queue_name=queue_name,
        from_status=from_status, to_status=to_status, step=step, attempt=attempt,
        actor=actor,
    )


class PgEventFeed:
    """One psycopg connection that LISTENs for new events and reads them."""

    def __init__(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str, *, channel: str = CHANNEL) -> Self:
        conninfo = make_conninfo(libpq_url(url), connect_timeout=10, **KEEPALIVES)
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        set_json_loads(orjson.loads, conn)
        await conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        return cls(conn)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.conn.close()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification (True) or ``timeout`` (False); notifications that
        arrived meanwhile are consumed too (one read answers them all)."""
        got = False
        async for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            got = True
        if got:
            async for _ in self.conn.notifies(timeout=0):
                pass
        return got

    async def after(
        self, after_id: int, *, limit: int, upto: int | None = None
    ) -> list[StoredEvent]:
        if upto is None:
            cur = await self.conn.execute(_AFTER, (after_id, limit))
        else:
            cur = await self.conn.execute(_BETWEEN, (after_id, upto, limit))
        return [_event(row) for row in await cur.fetchall()]

    async def _scalar(self, query: str) -> int:
        cur = await self.conn.execute(query)
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def xmax(self) -> int:
        return await self._scalar(_XMAX)

    async def xmin(self) -> int:
        return await self._scalar(_XMIN)

