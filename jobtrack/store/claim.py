"""Claiming: the one hot query that differs by database, kept here side by side.

PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim from one queue
without waiting on each other. SQLite: the write transaction (``BEGIN IMMEDIATE``) already
makes the claimer the only writer, and SQLAlchemy renders no locking clause there.

Either way the query walks the partial index ``ix_jobs_claim`` (runnable rows only), in
claim order, so its cost does not depend on how many finished jobs the table keeps nor on
the planner's statistics (tests/integration/test_claim.py checks the plan with EXPLAIN).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from jobtrack.domain.jobs import Change, Job, Phase, plan_claim
from jobtrack.domain.status import JobStatus
from jobtrack.store.codec import job_from_row, phase_from_row
from jobtrack.store.tables import job_phases, jobs
from jobtrack.store.writer import persist


def claim_query(
    queue: str, now: datetime, limit: int, names: Sequence[str] | None = None,
    tenant: str | None = None,
) -> Select[Any]:
    """Runnable jobs of one queue, highest priority first, then oldest ``run_at``."""
    query = (
        select(jobs)
        .where(
            jobs.c.queue_name == queue,
            jobs.c.status == JobStatus.PENDING.value,  # these two are the partial
            jobs.c.children_left == 0,                 # index's predicate, verbatim
            jobs.c.run_at <= now,
        )
        .order_by(jobs.c.priority.desc(), jobs.c.run_at, jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if names is not None:
        query = query.where(jobs.c.name.in_(list(names)))
    if tenant is not None:
        query = query.where(jobs.c.tenant == tenant)
    return query


async def _phases_of(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, list[Phase]]:
    out: dict[str, list[Phase]] = {}
    if not ids:
        return out
    rows = await conn.execute(
        select(job_phases).where(job_phases.c.job_id.in_(list(ids)))
        .order_by(job_phases.c.job_id, job_phases.c.position)
    )
    for r in rows.mappings():
        out.setdefault(r["job_id"], []).append(phase_from_row(r, prefix=""))
    return out


async def claim(
    conn: AsyncConnection,
    *,
    queues: Sequence[str],
    worker_id: str,
    limit: int,
    now: datetime,
    lease_until: datetime,
    names: Sequence[str] | None = None,
    tenant: str | None = None,
    actor: str | None = None,
) -> list[Job]:
    """Claim up to ``limit`` runnable jobs across ``queues``; each becomes ``running``
    with a lease, announced by its event, in the caller's transaction."""
    if names is not None and not names:
        return []
    rows: list[Any] = []
    for queue in queues:
        if len(rows) >= limit:
            break
        got = await conn.execute(claim_query(queue, now, limit - len(rows), names, tenant))
        rows.extend(got.mappings().all())
    if not rows:
        return []
    phases = await _phases_of(conn, [r["id"] for r in rows if r["phase_count"]])
    changes: list[Change] = [
        plan_claim(job_from_row(r, phases.get(r["id"], ())), now, worker_id=worker_id,
                   lease_until=lease_until)
        for r in rows
    ]
    await persist(conn, changes, actor=actor or f"worker:{worker_id}", now=now)
    return [c.after for c in changes]
