"""Leases of running jobs: the heartbeat that extends them, and the search for expired
ones (stalled jobs) that the reaper then plans through ``plan_stall``.

A heartbeat changes only ``lease_expires_at`` of rows the worker still holds: no status,
no event, one statement for every job the worker runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select, update

from jobtrack.domain.status import JobStatus
from jobtrack.store.tables import jobs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

# Built once, the values bound at execution (a per-call ``in_([...])`` leaves a reference
# cycle behind: see jobtrack/store/claim.py). The heartbeat never waits for a row lock:
# rows another transaction holds (typically this worker's own flush, finishing them) are
# skipped this round (the lease has two more rounds before it ends), so a heartbeat
# cannot deadlock with a writer.
_MINE = (
    jobs.c.id.in_(bindparam("ids", expanding=True)),
    jobs.c.worker_id == bindparam("_worker_id"),
    jobs.c.status == JobStatus.RUNNING.value,
)
_RENEW = (
    update(jobs)
    .where(jobs.c.id.in_(select(jobs.c.id).where(*_MINE).with_for_update(skip_locked=True)
                         .scalar_subquery()))
    .values(lease_expires_at=bindparam("lease_until", type_=jobs.c.lease_expires_at.type))
)
_HELD = select(jobs.c.id).where(*_MINE)
_HELD_RUNS = select(jobs.c.id, jobs.c.attempt).where(*_MINE)


async def renew_leases(
    conn: AsyncConnection, *, worker_id: str, ids: Sequence[str], lease_until: datetime
) -> set[str]:
    """Extend the lease of ``ids`` still running under ``worker_id``; return the ids this
    worker still holds (renewed now, or locked by a writer at this moment).

    An id missing from the answer is a job this worker no longer owns (it was reaped,
    cancelled, or retried elsewhere): its outcome must be discarded.
    """
    if not ids:
        return set()
    params = {"ids": list(ids), "_worker_id": worker_id, "lease_until": lease_until}
    await conn.execute(_RENEW, params)
    return {str(i) for i in (await conn.scalars(_HELD, params)).all()}


async def renew_runs(
    conn: AsyncConnection, *, worker_id: str, runs: Sequence[tuple[str, int]],
    lease_until: datetime,
) -> set[tuple[str, int]]:
    """:func:`renew_leases` for runs, ``(job id, attempt)``: return the runs this worker
    still holds. A job retried as a new attempt is no longer held by its old run, even
    when the same worker runs the new attempt (whose lease the renewal extends)."""
    if not runs:
        return set()
    params = {"ids": sorted({i for i, _ in runs}), "_worker_id": worker_id,
              "lease_until": lease_until}
    await conn.execute(_RENEW, params)
    return {(str(i), int(a)) for i, a in (await conn.execute(_HELD_RUNS, params)).all()}


async def expired_ids(conn: AsyncConnection, *, now: datetime, limit: int) -> list[str]:
    """Running jobs whose lease expired before ``now`` (partial index ``ix_jobs_lease``),
    skipping rows another reaper or writer holds (PostgreSQL)."""
    query = (
        select(jobs.c.id)
        .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < now)
        .order_by(jobs.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [str(i) for i in (await conn.scalars(query)).all()]
