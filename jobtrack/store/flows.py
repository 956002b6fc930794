"""Flow rows: create a whole tree in bulk, read the O(1) summary, list, walk the tree,
and cancel everything not yet finished."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, Table, and_, insert, select, true, update

from jobtrack.domain.events import EventType, flow_event_type
from jobtrack.domain.flows import Flow, FlowNode, flow_jobs, new_flow, plan_tree
from jobtrack.domain.ids import is_id, new_id
from jobtrack.domain.planner import plan_cancel
from jobtrack.domain.records import Job
from jobtrack.domain.status import TERMINAL, FlowStatus, flow_status
from jobtrack.errors import NotFound, ValidationFailed
from jobtrack.store.codec import (
    flow_from_row,
    flow_values,
    job_insert_values,
    jobs_from_joined_rows,
    phase_values,
    select_jobs_with_phases,
)
from jobtrack.store.events import created_row, flow_row, insert_events
from jobtrack.store.jobs import insert_jobs
from jobtrack.store.tables import events, flows, job_phases, jobs
from jobtrack.store.writes import apply

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from jobtrack.store.reader import Reads

#: trees at least this large go to PostgreSQL by COPY: the same rows and events as
#: ``insert_jobs``, without per-row statement overhead (100,000 jobs: ~10 s -> ~3 s)
COPY_THRESHOLD = 500


def not_found(flow_id: str) -> NotFound:
    return NotFound(f"flow {flow_id!r} not found", details={"flowId": flow_id})


async def create_flow(
    conn: AsyncConnection,
    root: FlowNode,
    *,
    tenant: str,
    flowname: str,
    now: datetime,
    actor: str,
    max_depth: int,
    max_jobs: int,
    default_max_attempts: int,
) -> tuple[Flow, list[Job]]:
    """Insert a flow and every job of its tree, with their events, in bulk."""
    planned = plan_tree(root, max_depth=max_depth, max_jobs=max_jobs)
    flow_id = new_id()
    flow = new_flow(id=flow_id, tenant=tenant, flowname=flowname, root=planned[0],
                    total=len(planned), now=now)
    new = flow_jobs(planned, flow_id=flow_id, tenant=tenant, now=now,
                    default_max_attempts=default_max_attempts)
    await conn.execute(insert(flows).values(flow_values(flow)))
    if conn.dialect.name == "postgresql" and len(new) >= COPY_THRESHOLD:
        await _copy_rows(conn, jobs, [job_insert_values(j) for j in new])
        phases = [phase_values(j.id, i, p) for j in new for i, p in enumerate(j.phases)]
        await _copy_rows(conn, job_phases, phases)
        await _copy_rows(conn, events, [created_row(j, actor) for j in new])
    else:
        await insert_jobs(conn, new, actor=actor)
    await insert_events(conn, [flow_row(flow, EventType.FLOW_CREATED, actor)])
    return flow, new


async def _copy_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY`` rows into ``table`` on the connection's own transaction (PostgreSQL).
    Statement triggers fire as for an insert (the events NOTIFY)."""
    if not rows:
        return
    columns = list(rows[0])
    as_json = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # psycopg.AsyncConnection
    async with driver.cursor() as cur, cur.copy(
        f"COPY {table.name} ({names}) FROM STDIN"
    ) as copy:
        for row in rows:
            await copy.write_row([
                orjson.dumps(row[c]).decode() if c in as_json and row[c] is not None
                else row[c]
                for c in columns
            ])


async def get_flow(conn: AsyncConnection, flow_id: str, *, tenant: str | None) -> Flow | None:
    """The flow summary: one row, whatever the size of the tree."""
    if not is_id(flow_id):
        return None
    query = select(flows).where(flows.c.id == flow_id)
    if tenant is not None:
        query = query.where(flows.c.tenant == tenant)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else flow_from_row(row)


async def list_flows(
    conn: Reads,
    *,
    tenant: str | None,
    limit: int,
    cursor: str | None = None,
    flowname: str | None = None,
    status: FlowStatus | None = None,
) -> tuple[list[Flow], str | None]:
    """A page of flows, newest first, and the next page's cursor."""
    conds: list[Any] = []
    if tenant is not None:
        conds.append(flows.c.tenant == tenant)
    if flowname is not None:
        conds.append(flows.c.flowname == flowname)
    if status is not None:
        conds.append(flows.c.status == status.value)
    if cursor is not None:
        if not is_id(cursor):
            raise ValidationFailed("cursor is not valid: pass the nextCursor of a previous page",
                                   details={"field": "cursor", "value": cursor})
        conds.append(flows.c.id < cursor)
    rows = (
        await conn.execute(
            select(flows).where(and_(true(), *conds)).order_by(flows.c.id.desc()).limit(limit + 1)
        )
    ).mappings().all()
    page = [flow_from_row(r) for r in rows[:limit]]
    return page, (page[-1].id if len(rows) > limit and page else None)


async def flow_job_list(
    conn: AsyncConnection, flow_id: str, *, limit: int | None = None
) -> list[Job]:
    """Every job of a flow with its phases, parents before children; with ``limit``, the
    first jobs in that order (ids follow the tree in pre-order: a connected top of it)."""
    query = select_jobs_with_phases().where(jobs.c.flow_id == flow_id)
    if limit is not None:
        first = select(jobs.c.id).where(jobs.c.flow_id == flow_id).order_by(jobs.c.id)
        query = query.where(jobs.c.id.in_(first.limit(limit).scalar_subquery()))
    rows = await conn.execute(query.order_by(jobs.c.id, "p_position"))
    return jobs_from_joined_rows(rows.mappings())


async def cancel_flow(
    conn: AsyncConnection, flow_id: str, *, tenant: str | None, actor: str, now: datetime
) -> Flow:
    """Cancel every job of the flow not yet terminal (running ones at their next
    checkpoint) and mark the flow cancelled by a user."""
    flow = await get_flow(conn, flow_id, tenant=tenant)
    if flow is None:
        raise not_found(flow_id)
    ids = (
        await conn.scalars(
            select(jobs.c.id).where(
                jobs.c.flow_id == flow_id, jobs.c.status.not_in([s.value for s in TERMINAL])
            )
        )
    ).all()
    await apply(conn, ids, lambda j: None if j.is_terminal else plan_cancel(j, now),
                actor=actor, now=now)
    # the flow row only now: locks are taken jobs first, then flows (no deadlock with
    # a worker completing one of these jobs at the same moment)
    await conn.execute(
        update(flows).where(flows.c.id == flow_id).values(cancel_requested=True)
    )
    return await settle_flow(conn, flow_id, now=now, actor=actor)


async def settle_flow(conn: AsyncConnection, flow_id: str, *, now: datetime, actor: str) -> Flow:
    """Re-derive a flow's status from its counters and flag; announce it if it moved."""
    row = (
        await conn.execute(select(flows).where(flows.c.id == flow_id).with_for_update())
    ).mappings().first()
    if row is None:
        raise not_found(flow_id)
    flow = flow_from_row(row)
    status = flow_status(flow.progress.counts(), cancelled_by_user=flow.cancelled,
                         started=flow.started_at is not None)
    if status is flow.status:
        return flow
    after = replace(flow, status=status, updated_at=now,
                    completed_at=now if status.value in {s.value for s in TERMINAL} else None)
    await conn.execute(
        update(flows).where(flows.c.id == flow_id).values(
            status=status.value, updated_at=now, completed_at=after.completed_at
        )
    )
    await insert_events(conn, [flow_row(after, flow_event_type(flow.status, status), actor)])
    return after
