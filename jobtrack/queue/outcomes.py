"""Outcomes of runs, written in batches: one transaction (the store's ``apply``) plans
each outcome with the domain planner against the job as the worker last saw it, written
only if its row has not moved since, else against the locked stored row, and writes them
all (job rows, phases, flow effects, events) at once.

An outcome counts only while the worker still owns the job: the job is running, under
this worker, in the same attempt. Otherwise (reaped after a lost lease, cancelled and
settled by someone else, retried) it is discarded, never written over the stored state.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import UNSET, Change, Job, JobUpdate
from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.status import JobStatus
from jobtrack.errors import JobtrackError
from jobtrack.store.engine import Database
from jobtrack.store.writes import Target, apply

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
    """Write a batch of outcomes in one transaction (the store's ``apply``).

    In a batch of more than one, each outcome is first planned against the job as this
    worker last saw it and written only if the row's version has not moved since
    (PostgreSQL: one guarded statement for the batch, no read; SQLite: the versions alone
    are read, under the write lock); the few whose row someone else changed meanwhile (a
    cancel request, a reaper, an outside update) are then locked, read whole and planned
    again. A lone outcome is planned against its locked row at once.
    """
    now = datetime.now(UTC)
    batch = _Batch(outcomes, worker_id, now)
    async with db.write() as conn:
        changes = await apply(conn, batch.targets(), batch.plan, actor=actor, now=now)
    return Written(changes, batch.discard({c.after.id for c in changes}))


class _Batch:
    """Plans a batch's outcomes against whichever copy of each job the store hands it:
    the worker's own first (in a batch of more than one), the locked stored row when that
    copy is refused or its row has moved. Of a job's outcomes, the one of the run this
    worker still owns counts; the others are discarded."""

    def __init__(self, outcomes: Sequence[Outcome], worker_id: str, now: datetime) -> None:
        self.worker_id = worker_id
        self.now = now
        self.of_job: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            self.of_job.setdefault(outcome.job.id, []).append(outcome)
        #: the worker's copy of each job tried first
        self.copies: dict[str, Job] = {}
        if len(outcomes) > 1:
            for job_id, mine in self.of_job.items():
                seen = next((o.seen for o in mine if o.seen is not None), None)
                if seen is not None:
                    self.copies[job_id] = seen
        #: per job, the outcomes left out when planned against the worker's copy and
        #: against the stored row, with why (None: this worker no longer owns the job;
        #: else the planner's refusal)
        self.left_on_copy: dict[str, list[tuple[Outcome, str | None]]] = {}
        self.left_on_row: dict[str, list[tuple[Outcome, str | None]]] = {}

    def targets(self) -> list[Target]:
        """Each job once: the worker's copy of it when there is one to try first."""
        return [self.copies.get(job_id, job_id) for job_id in self.of_job]

    def plan(self, stored: Job) -> Change | None:
        """The change of the one outcome of the job this worker still owns."""
        change: Change | None = None
        left: list[tuple[Outcome, str | None]] = []
        for outcome in self.of_job.get(stored.id, ()):
            if change is not None or not owned(stored, outcome.job, self.worker_id):
                # a second outcome of one job (the end of an old run beside the new
                # attempt's): ``owned`` tells them apart
                left.append((outcome, None))
                continue
            try:
                change = plan_outcome(stored, outcome, self.now)
            except JobtrackError as exc:
                left.append((outcome, exc.message))
        on_copy = stored is self.copies.get(stored.id)
        (self.left_on_copy if on_copy else self.left_on_row)[stored.id] = left
        return change

    def discard(self, written: set[str]) -> int:
        """Log the outcomes left out and count them (every outcome of a job no longer
        stored is left out)."""
        discarded = 0
        for job_id, mine in self.of_job.items():
            left = self.left_on_row.get(job_id)
            if left is None:
                left = (self.left_on_copy[job_id] if job_id in written
                        and job_id in self.left_on_copy else [(o, None) for o in mine])
            for outcome, refusal in left:
                discarded += 1
                if refusal is None:
                    log.info("discarded the outcome of job %s: this worker no longer owns "
                             "it", job_id)
                else:
                    log.warning("job %s: outcome %s refused: %s", job_id,
                                outcome.status.value, refusal)
        return discarded
