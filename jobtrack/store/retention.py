"""Retention: delete what is old and finished, one bounded batch per call.

A finished job goes with its phases and its events (its history). A flow goes only as a
whole: when it is finished, old, and none of its jobs is still pending or running, so
flow counters never describe jobs that no longer exist. Events that are not transitions
(progress, flow events) or whose job is gone are deleted once older than their own limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, exists, or_, select

from jobtrack.domain.status import FLOW_TERMINAL, TERMINAL
from jobtrack.store.tables import events, flows, job_phases, jobs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_TERMINAL = [s.value for s in TERMINAL]
_FLOW_TERMINAL = [s.value for s in FLOW_TERMINAL]


async def old_job_ids(conn: AsyncConnection, *, before: datetime, limit: int) -> list[str]:
    """Finished jobs outside any flow that completed before ``before``."""
    rows = await conn.scalars(
        select(jobs.c.id)
        .where(jobs.c.status.in_(_TERMINAL), jobs.c.completed_at < before,
               jobs.c.flow_id.is_(None))
        .limit(limit)
    )
    return [str(i) for i in rows.all()]


async def delete_jobs(conn: AsyncConnection, ids: Sequence[str]) -> int:
    """Delete jobs with their phases and events; return how many jobs went."""
    if not ids:
        return 0
    ids = list(ids)
    await conn.execute(delete(events).where(events.c.job_id.in_(ids)))
    await conn.execute(delete(job_phases).where(job_phases.c.job_id.in_(ids)))
    result = await conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
    return int(result.rowcount or 0)


async def old_flow_ids(conn: AsyncConnection, *, before: datetime, limit: int) -> list[str]:
    """Finished flows completed before ``before`` none of whose jobs is still active."""
    active = exists().where(jobs.c.flow_id == flows.c.id, jobs.c.status.not_in(_TERMINAL))
    rows = await conn.scalars(
        select(flows.c.id)
        .where(flows.c.status.in_(_FLOW_TERMINAL), flows.c.completed_at < before, ~active)
        .limit(limit)
    )
    return [str(i) for i in rows.all()]


async def delete_flows(conn: AsyncConnection, ids: Sequence[str]) -> tuple[int, int]:
    """Delete flows with all their jobs, phases and events; return (flows, jobs)."""
    if not ids:
        return 0, 0
    ids = list(ids)
    job_ids = select(jobs.c.id).where(jobs.c.flow_id.in_(ids)).scalar_subquery()
    await conn.execute(delete(events).where(events.c.flow_id.in_(ids)))
    await conn.execute(delete(job_phases).where(job_phases.c.job_id.in_(job_ids)))
    gone_jobs = await conn.execute(delete(jobs).where(jobs.c.flow_id.in_(ids)))
    gone = await conn.execute(delete(flows).where(flows.c.id.in_(ids)))
    return int(gone.rowcount or 0), int(gone_jobs.rowcount or 0)


async def delete_old_events(conn: AsyncConnection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` events older than ``before`` that are not the history of a
    job that still exists."""
    job_exists = exists().where(jobs.c.id == events.c.job_id)
    ids = (
        select(events.c.id)
        .where(
            events.c.at < before,
            or_(events.c.to_status.is_(None), events.c.job_id.is_(None),
                and_(events.c.job_id.is_not(None), ~job_exists)),
        )
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(events).where(events.c.id.in_(ids)))
    return int(result.rowcount or 0)
