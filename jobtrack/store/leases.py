"""Leases of running jobs: the heartbeat that extends them, and the search for expired
ones (stalled jobs) that the reaper then plans through ``plan_stall``.

A heartbeat changes only ``lease_expires_at`` of rows the worker still holds: no status,
no event, one statement for every job the worker runs.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from jobtrack.domain.status import JobStatus
from jobtrack.store.tables import jobs

# built once, the values bound at execution (a per-call ``in_([...])`` leaves a reference
# cycle behind: see jobtrack/store/claim.py). The rows are locked first, in descending id
# order like every other writer of jobs (store/writer.py), so a heartbeat and the same
# worker's flush of finished jobs cannot deadlock on each other.
_HELD = (
    select(jobs.c.id)
    .where(
        jobs.c.id.in_(bindparam("ids", expanding=True)),
        jobs.c.worker_id == bindparam("_worker_id"),
        jobs.c.status == JobStatus.RUNNING.value,
    )
    .order_by(jobs.c.id.desc())
    .with_for_update()
)
_RENEW = (
    update(jobs)
    .where(jobs.c.id.in_(_HELD.scalar_subquery()),
           # the lock may have waited for a writer: check again what it found
           jobs.c.worker_id == bindparam("_worker_id"),
           jobs.c.status == JobStatus.RUNNING.value)
    .values(lease_expires_at=bindparam("lease_until", type_=jobs.c.lease_expires_at.type))
    .returning(jobs.c.id)
)


async def renew_leases(
    conn: AsyncConnection, *, worker_id: str, ids: Sequence[str], lease_until: datetime
) -> set[str]:
    """Extend the lease of ``ids`` still running under ``worker_id``; return those ids.

    An id missing from the answer is a job this worker no longer owns (it was reaped,
    cancelled, or retried elsewhere): its outcome must be discarded.
    """
    if not ids:
        return set()
    params = {"ids": list(ids), "_worker_id": worker_id, "lease_until": lease_until}
    return {str(i) for i in (await conn.scalars(_RENEW, params)).all()}


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
