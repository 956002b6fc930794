"""Claiming: the one hot query that differs by database, kept here side by side.

PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim from one queue
without waiting on each other. SQLite: the write transaction (``BEGIN IMMEDIATE``) already
makes the claimer the only writer, and SQLAlchemy renders no locking clause there.

Either way the query walks the partial index ``ix_jobs_claim`` (runnable rows only), in
claim order, so its cost does not depend on how many finished jobs the table keeps nor on
the planner's statistics (tests/store/test_claim_plan.py checks the plan with EXPLAIN).

The statements are built once (per queue, task names and tenant) with bound parameters
for what varies per claim, not per claim: building ``column.in_([...])`` makes SQLAlchemy
clone a bind parameter into a reference cycle (``BindParameter._cloned_set``), ten
objects only the cyclic GC frees, per statement built; a worker tuned to collect the
young generation rarely (``jobtrack worker``) then piles them up (docs/targets.md P8).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, Select, bindparam, select

from jobtrack.domain.planner import plan_claim
from jobtrack.domain.records import Job, Phase
from jobtrack.domain.status import JobStatus
from jobtrack.store.codec import job_from_row, phase_from_row
from jobtrack.store.tables import job_phases, jobs
from jobtrack.store.writes import Locked, apply

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


@lru_cache(maxsize=256)
def _claim_statement(queue: str, names: tuple[str, ...] | None,
                     tenant: str | None) -> Select[Any]:
    """The claim of one queue, built once; bound at execution: ``now``, ``limit`` (and
    ``names``, ``tenant`` when given)."""
    query = (
        select(jobs)
        .where(
            jobs.c.queue_name == queue,
            jobs.c.status == JobStatus.PENDING.value,  # these two are the partial
            jobs.c.children_left == 0,                 # index's predicate, verbatim
            jobs.c.run_at <= bindparam("now", type_=jobs.c.run_at.type),
        )
        .order_by(jobs.c.priority.desc(), jobs.c.run_at, jobs.c.id)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
    )
    if names is not None:
        query = query.where(jobs.c.name.in_(bindparam("names", expanding=True)))
    if tenant is not None:
        query = query.where(jobs.c.tenant == bindparam("tenant"))
    return query


def _claim_params(now: datetime, limit: int, names: Sequence[str] | None,
                  tenant: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"now": now, "limit": limit}
    if names is not None:
        params["names"] = list(names)
    if tenant is not None:
        params["tenant"] = tenant
    return params


def claim_query(
    queue: str, now: datetime, limit: int, names: Sequence[str] | None = None,
    tenant: str | None = None,
) -> Select[Any]:
    """Runnable jobs of one queue, highest priority first, then oldest ``run_at`` (the
    claim's statement with its values bound, for EXPLAIN; ``claim`` binds them at
    execution instead)."""
    return _claim_statement(queue, None if names is None else tuple(names), tenant).params(
        _claim_params(now, limit, names, tenant))


_PHASES_OF = (
    select(job_phases).where(job_phases.c.job_id.in_(bindparam("ids", expanding=True)))
    .order_by(job_phases.c.job_id, job_phases.c.position)
)


async def _phases_of(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, list[Phase]]:
    out: dict[str, list[Phase]] = {}
    if not ids:
        return out
    rows = await conn.execute(_PHASES_OF, {"ids": list(ids)})
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
    key = None if names is None else tuple(names)
    for queue in queues:
        if len(rows) >= limit:
            break
        got = await conn.execute(_claim_statement(queue, key, tenant),
                                 _claim_params(now, limit - len(rows), names, tenant))
        rows.extend(got.mappings().all())
    if not rows:
        return []
    phases = await _phases_of(conn, [r["id"] for r in rows if r["phase_count"]])
    changes = await apply(
        conn, [Locked(job_from_row(r, phases.get(r["id"], ()))) for r in rows],
        lambda job: plan_claim(job, now, worker_id=worker_id, lease_until=lease_until),
        actor=actor or f"worker:{worker_id}", now=now)
    return [c.after for c in changes]
