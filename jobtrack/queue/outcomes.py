"""Outcomes of runs, written in batches: one transaction locks the jobs, plans each
outcome with the domain planner against what is really stored, and persists them all
(job rows, phases, flow effects, events) at once.

An outcome counts only while the worker still owns the job: the job is running, under
this worker, in the same attempt. Otherwise (reaped after a lost lease, cancelled and
settled by someone else, retried) it is discarded, never written over the stored state.
"""

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import UNSET, Change, Job, JobUpdate
from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.status import JobStatus
from jobtrack.errors import JobtrackError
from jobtrack.store.engine import Database
from jobtrack.store.writer import lock_jobs, persist, write_if_unchanged

log = logging.getLogger("jobtrack.worker")


@dataclass(slots=True)
class Outcome:
    """How one run of a job ended, waiting to be written."""

    job: Job
    status: JobStatus
    result: Any = None
    error: Mapping[str, Any] | None = None
    stats: Mapping[str, Any] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: retry at once (an interrupted run) instead of after the policy's backoff
    retry_now: bool = False
    #: the job as the worker last saw it stored (claimed, or after its own reports)
    seen: Job | None = None


@dataclass(slots=True)
class Written:
    """What one batch did."""

    changes: list[Change] = field(default_factory=list)
    discarded: int = 0


def owned(stored: Job, claimed: Job, worker_id: str) -> bool:
    """True while ``worker_id`` still runs this attempt of the job."""
    return (
        stored.status is JobStatus.RUNNING
        and stored.worker_id == worker_id
        and stored.attempt == claimed.attempt
    )


def plan_outcome(stored: Job, outcome: Outcome, now: datetime) -> Change:
    """The change an outcome makes to the stored job (a failure with attempts left
    becomes a retry at the policy's backoff)."""
    if outcome.status is JobStatus.COMPLETED:
        update = JobUpdate(status=JobStatus.COMPLETED, result=outcome.result,
                           stats=outcome.stats)
    elif outcome.status is JobStatus.FAILED:
        retry_at = now if outcome.retry_now else outcome.retry.next_run_at(stored.attempt, now)
        update = JobUpdate(status=JobStatus.FAILED, result=UNSET, error=outcome.error,
                           stats=outcome.stats, retry_at=retry_at)
    else:
        update = JobUpdate(status=outcome.status, error=outcome.error, stats=outcome.stats)
    return plan_update(stored, update, now)


async def write_outcomes(
    db: Database, outcomes: Sequence[Outcome], *, worker_id: str, actor: str
) -> Written:
    """Write a batch of outcomes in one transaction.

    Each outcome is first planned against the job as this worker last saw it and written
    only if the row's version has not moved since (PostgreSQL: one guarded statement for
    the batch, no read; SQLite: the versions alone are read, under the write lock); the
    few whose row someone else changed meanwhile (a cancel request, a reaper, an outside
    update) are then locked, read whole and planned again.
    """
    out = Written()
    now = datetime.now(UTC)
    async with db.write() as conn:
        todo = list(outcomes)
        if len(todo) > 1:
            todo, out.changes = await _write_unchanged(conn, todo, now, actor)
        if todo:
            locked = await lock_jobs(conn, [o.job.id for o in todo])
            changes: list[Change] = []
            for outcome in todo:
                stored = locked.get(outcome.job.id)
                if stored is None or not owned(stored, outcome.job, worker_id):
                    out.discarded += 1
                    log.info("discarded the outcome of job %s: this worker no longer owns "
                             "it", outcome.job.id)
                    continue
                change = _plan(stored, outcome, now)
                if change is None:
                    out.discarded += 1
                else:
                    changes.append(change)
            out.changes.extend(await persist(conn, changes, actor=actor, now=now))
    return out


async def _write_unchanged(
    conn: AsyncConnection, outcomes: list[Outcome], now: datetime, actor: str
) -> tuple[list[Outcome], list[Change]]:
    """Write the outcomes whose job row is as this worker last saw it; return the rest
    (to plan again from the stored rows) and the changes written."""
    planned: dict[str, tuple[Outcome, Change]] = {}
    rest: list[Outcome] = []
    for outcome in outcomes:
        change = None
        if outcome.seen is not None:
            # refused here, it may still pass against the stored row: that decides
            with contextlib.suppress(JobtrackError):
                change = plan_outcome(outcome.seen, outcome, now)
        if change is None or change.is_noop or outcome.job.id in planned:
            # a second outcome of one job (the end of an old run beside the new
            # attempt's) is planned from the locked row, where ``owned`` tells them apart
            rest.append(outcome)
        else:
            planned[outcome.job.id] = (outcome, change)
    if not planned:
        return rest, []
    # descending ids, like every other writer's locks: children before parents
    order = sorted(planned, reverse=True)
    written_ids = await write_if_unchanged(conn, [planned[i][1] for i in order])
    rest.extend(planned[i][0] for i in order if i not in written_ids)
    changes = [planned[i][1] for i in order if i in written_ids]
    return rest, await persist(conn, changes, actor=actor, now=now, rows_written=True)


def _plan(stored: Job, outcome: Outcome, now: datetime) -> Change | None:
    try:
        return plan_outcome(stored, outcome, now)
    except JobtrackError as exc:
        log.warning("job %s: outcome %s refused: %s", stored.id, outcome.status.value,
                    exc.message)
        return None
