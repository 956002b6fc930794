"""Per-queue figures for operators (``GET /queues``): jobs in each status, how many
running jobs look stuck, and since when the oldest runnable job has been waiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, select

from jobtrack.domain.status import JobStatus, Step
from jobtrack.store.jobs import paused_condition, step_condition
from jobtrack.store.tables import jobs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_STATUS = {s.value: s for s in JobStatus}


@dataclass(slots=True)
class QueueStats:
    """One queue's figures; ``counts`` holds every status, zero included."""

    queue_name: str
    counts: dict[JobStatus, int] = field(default_factory=lambda: dict.fromkeys(JobStatus, 0))
    #: running longer than the stuck threshold (by ``started_at``)
    stuck: int = 0
    #: ``run_at`` of the oldest pending job that may run now (not delayed, no children
    #: left to wait for); None when no job is waiting
    oldest_pending_at: datetime | None = None
    #: pending with ``runAt`` ahead / waiting for children; running with a paused phase
    delayed: int = 0
    waiting_children: int = 0
    paused: int = 0


def _count(cond: Any) -> Any:
    return func.sum(case((cond, 1), else_=0))


async def queue_overview(
    conn: AsyncConnection, *, tenant: str | None, now: datetime, stuck_after: float
) -> list[QueueStats]:
    """Figures of every queue that has jobs, by name; ``tenant`` None: all tenants."""
    cutoff = now - timedelta(seconds=stuck_after)
    running = jobs.c.status == JobStatus.RUNNING.value
    waiting = and_(
        jobs.c.status == JobStatus.PENDING.value,
        jobs.c.children_left == 0,
        jobs.c.run_at <= now,
    )
    query: Any = (
        select(
            jobs.c.queue_name,
            jobs.c.status,
            func.count().label("n"),
            func.sum(case((and_(running, jobs.c.started_at < cutoff), 1), else_=0))
            .label("stuck"),
            func.min(case((waiting, jobs.c.run_at), else_=None)).label("oldest"),
            _count(step_condition(Step.DELAYED.value, now)).label("delayed"),
            _count(step_condition(Step.WAITING_CHILDREN.value, now)).label("waiting_children"),
            _count(paused_condition()).label("paused"),
        )
        .group_by(jobs.c.queue_name, jobs.c.status)
        .order_by(jobs.c.queue_name)
    )
    if tenant is not None:
        query = query.where(jobs.c.tenant == tenant)
    out: dict[str, QueueStats] = {}
    for row in await conn.execute(query):
        stats = out.setdefault(row.queue_name, QueueStats(row.queue_name))
        stats.counts[_STATUS[row.status]] = int(row.n)
        stats.stuck += int(row.stuck or 0)
        stats.delayed += int(row.delayed or 0)
        stats.waiting_children += int(row.waiting_children or 0)
        stats.paused += int(row.paused or 0)
        if row.oldest is not None and (
            stats.oldest_pending_at is None or row.oldest < stats.oldest_pending_at
        ):
            stats.oldest_pending_at = row.oldest
    return list(out.values())
