"""Stalled jobs: running jobs whose lease expired because their worker died or stopped
heart-beating. Any worker reaps them periodically: each is retried (after its task's
backoff) while attempts remain, else failed with error code ``stalled``. None is ever left
``running`` forever.
"""

from collections.abc import Container
from datetime import UTC, datetime

from jobtrack.domain.planner import plan_stall
from jobtrack.domain.records import Change, Job
from jobtrack.domain.retry import RetryPolicy, policy_of
from jobtrack.domain.status import JobStatus
from jobtrack.queue.tasks import TaskRegistry
from jobtrack.store import leases
from jobtrack.store.engine import Database
from jobtrack.store.writes import apply


async def reap(
    db: Database,
    *,
    tasks: TaskRegistry | None = None,
    actor: str = "system:reaper",
    limit: int = 200,
    now: datetime | None = None,
    held: Container[tuple[str, int]] = frozenset(),
) -> list[Change]:
    """Plan and write the stall of up to ``limit`` expired jobs; return the changes.

    ``held``: runs, ``(job id, attempt)``, the calling worker holds. They are alive (their
    worker is the one reaping), only their lease ran out while the database was unreachable for
    longer than it: their outcome is written, or their lease renewed, as soon as it
    answers again, so they are never stalled by their own worker."""
    now = now or datetime.now(UTC)
    default = RetryPolicy()
    async with db.write() as conn:
        ids = await leases.expired_ids(conn, now=now, limit=limit)
        if not ids:
            return []

        def plan(job: Job) -> Change | None:
            if job.status is not JobStatus.RUNNING or job.lease_expires_at is None \
                    or job.lease_expires_at >= now or (job.id, job.attempt) in held:
                return None  # finished or renewed since the search, or ours
            task = tasks.get(job.name) if tasks is not None else None
            policy = policy_of(job.retry, task.retry if task is not None else default)
            return plan_stall(job, now, retry_at=policy.next_run_at(job.attempt, now))

        return await apply(conn, ids, plan, actor=actor, now=now)
