"""Webhook subscriptions, their deliveries (stored before any attempt, so a restart loses
none) and the cursor of the loop that turns events into deliveries.

Claiming deliveries works on both databases and in any number of processes: a claim
takes due deliveries that are first in line for their job and webhook (an earlier one
still pending holds the later ones back, so a job's events arrive in order), bumps their
attempt count and pushes ``next_attempt_at`` out by a lease, in one transaction
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` makes the
claimer the only writer). A process that dies mid-attempt leaves the delivery to be
retried when the lease ends. Outcomes are written only if the attempt is still the
current one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobtrack.domain.ids import is_id
from jobtrack.domain.status import DeliveryStatus
from jobtrack.store.events import StoredEvent
from jobtrack.store.tables import cursors, events, webhook_deliveries, webhooks

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from jobtrack.store.reader import Reads

PENDING = DeliveryStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class Webhook:
    """A tenant's subscription: where to POST which kinds of events."""

    id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime
    flow_id: str | None = None
    queue_name: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one webhook."""

    id: int
    webhook_id: str
    tenant: str
    event_id: int
    event_type: str
    job_id: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this process may attempt now (attempt number ``attempts``)."""

    delivery: Delivery
    url: str
    secret: str
    #: None when the event was deleted by retention before it could be delivered
    event: StoredEvent | None


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id, tenant=row.tenant, url=row.url, events=tuple(row.events),
        secret=row.secret, created_at=row.created_at, flow_id=row.flow_id,
        queue_name=row.queue_name,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id, webhook_id=row.webhook_id, tenant=row.tenant, event_id=row.event_id,
        event_type=row.event_type, job_id=row.job_id, status=DeliveryStatus(row.status),
        attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        created_at=row.created_at, last_status_code=row.last_status_code,
        last_error=row.last_error, delivered_at=row.delivered_at,
    )


async def insert_webhook(conn: AsyncConnection, hook: Webhook) -> None:
    await conn.execute(insert(webhooks).values(
        id=hook.id, tenant=hook.tenant, url=hook.url, events=list(hook.events),
        secret=hook.secret, flow_id=hook.flow_id, queue_name=hook.queue_name,
        created_at=hook.created_at,
    ))


async def get_webhook(
    conn: AsyncConnection, webhook_id: str, *, tenant: str | None
) -> Webhook | None:
    """One webhook; another tenant's is None, like a missing one."""
    if not is_id(webhook_id):
        return None
    query = select(webhooks).where(webhooks.c.id == webhook_id)
    if tenant is not None:
        query = query.where(webhooks.c.tenant == tenant)
    row = (await conn.execute(query)).first()
    return None if row is None else _webhook(row)


async def list_webhooks(conn: Reads, *, tenant: str | None) -> list[Webhook]:
    """A tenant's webhooks (every tenant's for ``None``), oldest first."""
    query = select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)
    if tenant is not None:
        query = query.where(webhooks.c.tenant == tenant)
    return [_webhook(r) for r in await conn.execute(query)]


async def delete_webhook(conn: AsyncConnection, webhook_id: str, *, tenant: str | None) -> bool:
    """Delete a webhook and (by cascade) its deliveries; False if there was none."""
    if not is_id(webhook_id):
        return False
    stmt = delete(webhooks).where(webhooks.c.id == webhook_id)
    if tenant is not None:
        stmt = stmt.where(webhooks.c.tenant == tenant)
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def webhooks_of(conn: AsyncConnection, tenants: Collection[str]) -> list[Webhook]:
    """Every webhook of these tenants (the dispatcher matches a batch of events)."""
    if not tenants:
        return []
    rows = await conn.execute(select(webhooks).where(webhooks.c.tenant.in_(sorted(tenants))))
    return [_webhook(r) for r in rows]


async def any_webhooks(conn: AsyncConnection) -> bool:
    """True when some tenant has a webhook (one index probe)."""
    return await conn.scalar(select(webhooks.c.id).limit(1)) is not None


async def insert_deliveries(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(webhook_deliveries), list(rows))


async def list_deliveries(
    conn: AsyncConnection, webhook_id: str, *, limit: int, before: int | None = None
) -> list[Delivery]:
    """A webhook's deliveries, newest first, ``limit`` at a time (keyset on id)."""
    query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
    if before is not None:
        query = query.where(webhook_deliveries.c.id < before)
    rows = await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))
    return [_delivery(r) for r in rows]


async def ensure_cursor(conn: AsyncConnection, name: str, *, start: int, now: datetime) -> None:
    """Create the cursor at ``start`` unless it exists."""
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(
        ins(cursors).values(name=name, event_id=start, updated_at=now)
        .on_conflict_do_nothing(index_elements=[cursors.c.name])
    )


async def lock_cursor(conn: AsyncConnection, name: str) -> int | None:
    """The cursor's event id, locked until the transaction ends; None if it is missing."""
    value = await conn.scalar(
        select(cursors.c.event_id).where(cursors.c.name == name).with_for_update()
    )
    return None if value is None else int(value)


async def move_cursor(conn: AsyncConnection, name: str, event_id: int, now: datetime) -> None:
    await conn.execute(update(cursors).where(cursors.c.name == name)
                       .values(event_id=event_id, updated_at=now))


def _first_in_line() -> Any:
    """Pending deliveries numbered within their (webhook, job): 1 is next in line.
    Deliveries of no job (flow events) are each their own line."""
    d = webhook_deliveries
    line = (d.c.webhook_id, d.c.job_id, case((d.c.job_id.is_(None), d.c.id), else_=0))
    return (
        select(d.c.id, d.c.next_attempt_at,
               func.row_number().over(partition_by=line, order_by=d.c.id).label("place"))
        .where(d.c.status == PENDING)
        .subquery("line")
    )


async def claim_due(
    conn: AsyncConnection, *, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries, each first in line, for one attempt each."""
    d = webhook_deliveries
    line = _first_in_line()
    due = (
        select(line.c.id).where(line.c.place == 1, line.c.next_attempt_at <= now)
        .order_by(line.c.next_attempt_at, line.c.id).limit(limit)
    )
    query = (
        select(d.c.id).where(d.c.id.in_(due.scalar_subquery()), d.c.status == PENDING,
                             d.c.next_attempt_at <= now)
        .order_by(d.c.id).with_for_update(skip_locked=True)
    )
    ids = [int(i) for i in (await conn.scalars(query))]
    if not ids:
        return []
    await conn.execute(update(d).where(d.c.id.in_(ids))
                       .values(attempts=d.c.attempts + 1, next_attempt_at=lease_until))
    rows = await conn.execute(
        select(d, webhooks.c.url, webhooks.c.secret,
               events.c.id.label("e_id"), events.c.tenant.label("e_tenant"),
               events.c.type.label("e_type"), events.c.at.label("e_at"),
               events.c.data.label("e_data"))
        .join(webhooks, webhooks.c.id == d.c.webhook_id)
        .outerjoin(events, events.c.id == d.c.event_id)
        .where(d.c.id.in_(ids)).order_by(d.c.id)
    )
    out: list[ClaimedDelivery] = []
    for r in rows:
        event = None
        if r.e_id is not None:
            event = StoredEvent(id=r.e_id, tenant=r.e_tenant, type=r.e_type, at=r.e_at,
                                data=r.e_data, job_id=r.job_id)
        out.append(ClaimedDelivery(_delivery(r), r.url, r.secret, event))
    return out


async def record_attempt(
    conn: AsyncConnection,
    delivery: Delivery,
    *,
    status: DeliveryStatus,
    next_attempt_at: datetime,
    status_code: int | None,
    error: str | None,
    now: datetime,
) -> bool:
    """Write an attempt's outcome; False if the attempt was no longer the current one
    (its lease ran out and another process took the delivery)."""
    d = webhook_deliveries
    result = await conn.execute(
        update(d)
        .where(and_(d.c.id == delivery.id, d.c.status == PENDING,
                    d.c.attempts == delivery.attempts))
        .values(status=status.value, next_attempt_at=next_attempt_at,
                last_status_code=status_code, last_error=error,
                delivered_at=now if status is DeliveryStatus.DELIVERED else None)
    )
    return bool(result.rowcount)


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    """When the earliest delivery first in its line is due (the delivery loop sleeps until
    then; deliveries held back behind an earlier one do not count)."""
    line = _first_in_line()
    value: datetime | None = await conn.scalar(
        select(func.min(line.c.next_attempt_at)).where(line.c.place == 1)
    )
    return value
