"""The event log: rows written beside each change (the outbox), read back for replay,
live fan-out, webhooks and each job's history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, text

from jobtrack.domain.events import EventType
from jobtrack.domain.flows import Flow
from jobtrack.domain.records import Change, Job
from jobtrack.domain.wire import flow_to_wire, iso, job_delta, job_to_wire
from jobtrack.store import bulk
from jobtrack.store.tables import events

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of the event log."""

    id: int
    tenant: str
    type: str
    at: datetime
    data: dict[str, Any]
    job_id: str | None = None
    flow_id: str | None = None
    queue_name: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    step: str | None = None
    attempt: int | None = None
    actor: str | None = None

    def envelope(self) -> dict[str, Any]:
        """The event as clients receive it: ``{id, type, at, data}`` (the API reference)."""
        return {"id": self.id, "type": self.type, "at": iso(self.at), "data": self.data}


def created_row(job: Job, actor: str) -> dict[str, Any]:
    return {
        "tenant": job.tenant,
        "type": EventType.JOB_CREATED.value,
        "at": job.created_at,
        "job_id": job.id,
        "flow_id": job.flow_id,
        "queue_name": job.queue_name,
        "from_status": None,
        "to_status": job.status.value,
        "step": job.step,
        "attempt": job.attempt,
        "actor": actor,
        "data": job_to_wire(job),
    }


def change_row(change: Change, actor: str) -> dict[str, Any]:
    job = change.after
    transition = change.transition
    return {
        "tenant": job.tenant,
        "type": (change.event_type or EventType.JOB_UPDATED).value,
        "at": job.updated_at,
        "job_id": job.id,
        "flow_id": job.flow_id,
        "queue_name": job.queue_name,
        "from_status": transition[0].value if transition else None,
        "to_status": transition[1].value if transition else None,
        "step": job.step,
        "attempt": job.attempt,
        "actor": actor,
        "data": job_delta(job, change.changed),
    }


def flow_row(flow: Flow, kind: EventType, actor: str) -> dict[str, Any]:
    return {
        "tenant": flow.tenant,
        "type": kind.value,
        "at": flow.updated_at,
        "job_id": None,
        "flow_id": flow.id,
        "queue_name": flow.queue_name,
        "from_status": None,
        "to_status": None,
        "step": None,
        "attempt": None,
        "actor": actor,
        "data": flow_to_wire(flow),
    }


async def insert_events(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if bulk.wanted(conn, rows):  # a batch: one statement / a driver-level executemany
        await bulk.insert(conn, events, rows)
    elif rows:
        await conn.execute(insert(events), list(rows))


def _from_row(row: Any) -> StoredEvent:
    return StoredEvent(
        id=row.id, tenant=row.tenant, type=row.type, at=row.at, data=row.data,
        job_id=row.job_id, flow_id=row.flow_id, queue_name=row.queue_name,
        from_status=row.from_status, to_status=row.to_status, step=row.step,
        attempt=row.attempt, actor=row.actor,
    )


async def read_after(
    conn: AsyncConnection,
    after_id: int,
    *,
    limit: int = 1000,
    tenant: str | None = None,
    job_id: str | None = None,
    flow_id: str | None = None,
    queue_name: str | None = None,
    upto: int | None = None,
) -> list[StoredEvent]:
    """Events with id greater than ``after_id`` (and at most ``upto``), oldest first,
    optionally filtered."""
    conds = [events.c.id > after_id]
    if upto is not None:
        conds.append(events.c.id <= upto)
    if tenant is not None:
        conds.append(events.c.tenant == tenant)
    if job_id is not None:
        conds.append(events.c.job_id == job_id)
    if flow_id is not None:
        conds.append(events.c.flow_id == flow_id)
    if queue_name is not None:
        conds.append(events.c.queue_name == queue_name)
    rows = await conn.execute(
        select(events).where(and_(*conds)).order_by(events.c.id).limit(limit)
    )
    return [_from_row(r) for r in rows]


async def history(conn: AsyncConnection, job_id: str) -> list[StoredEvent]:
    """A job's transitions, oldest first: the events that changed its status."""
    rows = await conn.execute(
        select(events)
        .where(events.c.job_id == job_id, events.c.to_status.is_not(None))
        .order_by(events.c.id)
    )
    return [_from_row(r) for r in rows]


async def last_id(conn: AsyncConnection) -> int:
    from sqlalchemy import func

    value = await conn.scalar(select(func.max(events.c.id)))
    return int(value or 0)


async def snapshot_xmax(conn: AsyncConnection) -> int:
    """PostgreSQL: the first transaction id not yet assigned (every transaction that could
    still commit a row not visible now has an id below it, or gets one later)."""
    value = await conn.scalar(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))
    return int(value)


async def snapshot_xmin(conn: AsyncConnection) -> int:
    """PostgreSQL: the oldest transaction id still running (every id below it finished)."""
    value = await conn.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text"))
    return int(value)
