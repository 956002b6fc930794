"""Finishing runs without re-reading them: each outcome is planned against the
job as its worker last saw it and written only if the row's version has not moved; a row
that someone else changed meanwhile is planned again from what is stored."""

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

from jobtrack.domain.planner import plan_claim, plan_update
from jobtrack.domain.records import JobUpdate, Progress
from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.outcomes import Outcome, write_outcomes
from jobtrack.queue.worker import Worker
from jobtrack.store import claim as store_claim
from jobtrack.store import events as store_events
from jobtrack.store import jobs as store_jobs
from jobtrack.store.writer import write_if_unchanged

Running = Callable[..., AbstractAsyncContextManager[Worker]]


async def _claim_all(app: App, worker_id: str = "w1") -> list:
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        return await store_claim.claim(
            conn, queues=["default"], worker_id=worker_id, limit=100, now=now,
            lease_until=now + timedelta(seconds=30))


async def test_version_moves_with_every_change_and_guards_the_write(app: App) -> None:
    @app.task
    async def noop(ctx: JobContext) -> None: ...

    jobs = [await app.enqueue("noop") for _ in range(3)]
    assert {j.version for j in jobs} == {1}
    claimed = await _claim_all(app)
    assert {j.version for j in claimed} == {2}
    now = datetime.now(UTC)
    fresh = [plan_update(j, JobUpdate(status=JobStatus.COMPLETED), now) for j in claimed[:2]]
    # a change planned from the job as it was before the claim: stale, refused
    stale = plan_claim(jobs[2], now, worker_id="w2", lease_until=now)
    async with app.db.write() as conn:
        written = await write_if_unchanged(conn, [*fresh, stale])
    assert written == {claimed[0].id, claimed[1].id}
    stored = {j.id: await app.get_job(j.id) for j in claimed}
    assert stored[claimed[0].id].status is JobStatus.COMPLETED
    assert stored[claimed[0].id].version == 3
    assert stored[claimed[2].id].status is JobStatus.RUNNING  # untouched
    assert stored[claimed[2].id].worker_id == "w1"


async def test_outcome_of_a_row_changed_meanwhile_is_planned_from_the_stored_row(
    app: App,
) -> None:
    @app.task
    async def noop(ctx: JobContext) -> None: ...

    for _ in range(3):
        await app.enqueue("noop")
    claimed = await _claim_all(app)
    changed = claimed[0]
    # someone else reports progress on one of them while it runs (PATCH from outside)
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        after = await store_jobs.change_job(
            conn, changed.id, lambda j: plan_update(j, JobUpdate(progress=Progress(5, 10)), now),
            tenant=None, actor="outside", now=now)
    assert after.version == changed.version + 1
    outcomes = [Outcome(j, JobStatus.COMPLETED, result={"n": i}, seen=j)
                for i, j in enumerate(claimed)]
    written = await write_outcomes(app.db, outcomes, worker_id="w1", actor="worker:w1")
    assert written.discarded == 0
    assert sorted(c.after.id for c in written.changes) == sorted(j.id for j in claimed)
    for i, job in enumerate(claimed):
        stored = await app.get_job(job.id)
        assert stored.status is JobStatus.COMPLETED and stored.result == {"n": i}
    # the outside progress survived: the stale plan was not written over it
    stored = await app.get_job(changed.id)
    assert stored.progress == Progress(5, 10)
    assert stored.version == after.version + 1
    async with app.db.read() as conn:
        history = await store_events.history(conn, changed.id)
    assert [e.to_status for e in history] == ["pending", "running", "completed"]


async def test_outcome_of_a_job_reaped_meanwhile_is_discarded(app: App) -> None:
    @app.task(max_attempts=2)
    async def noop(ctx: JobContext) -> None: ...

    for _ in range(2):
        await app.enqueue("noop")
    claimed = await _claim_all(app)
    # the lease ran out and a reaper gave the first job to its next attempt
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        await store_jobs.change_job(
            conn, claimed[0].id,
            lambda j: plan_update(j, JobUpdate(status=JobStatus.FAILED, error={
                "message": "stalled", "code": "stalled"}), now),
            tenant=None, actor="reaper", now=now)
    outcomes = [Outcome(j, JobStatus.COMPLETED, seen=j) for j in claimed]
    written = await write_outcomes(app.db, outcomes, worker_id="w1", actor="worker:w1")
    assert written.discarded == 1
    first = await app.get_job(claimed[0].id)
    assert first.status is JobStatus.PENDING and first.attempt == 2
    assert (await app.get_job(claimed[1].id)).status is JobStatus.COMPLETED


async def test_worker_finishes_jobs_whose_progress_it_reported(
    app: App, running: Running
) -> None:
    @app.task
    async def counted(ctx: JobContext, n: int) -> int:
        for i in range(n):
            await ctx.progress(i + 1, n)
        return n

    jobs = [await app.enqueue("counted", n=3) for _ in range(20)]
    async with running(app, concurrency=20):
        done = await asyncio.gather(*(app.wait(j.id, timeout=20) for j in jobs))
    assert {d.status for d in done} == {JobStatus.COMPLETED}
    assert {d.progress for d in done} == {Progress(3, 3)}
    # claim, three progress writes, completion: one version step each
    assert {d.version for d in done} == {6}


async def test_the_old_runs_outcome_beside_the_new_attempts_in_one_batch(app: App) -> None:
    """Cancelled and retried while it ran, a job is claimed again by the same worker: the
    old run's outcome and the new run's arrive in one batch; only the new one counts."""
    from jobtrack.domain.planner import plan_retry

    @app.task
    async def noop(ctx: JobContext) -> None: ...

    await app.enqueue("noop")
    (old,) = await _claim_all(app)
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        await store_jobs.change_job(
            conn, old.id, lambda j: plan_update(j, JobUpdate(status=JobStatus.CANCELLED), now),
            tenant=None, actor="outside", now=now)
        await store_jobs.change_job(conn, old.id, lambda j: plan_retry(j, now),
                                    tenant=None, actor="outside", now=now)
    (new,) = await _claim_all(app)
    assert (new.id, new.attempt) == (old.id, old.attempt + 1)
    batch = [Outcome(new, JobStatus.COMPLETED, result={"run": "new"}, seen=new),
             Outcome(old, JobStatus.COMPLETED, result={"run": "old"}, seen=old)]
    written = await write_outcomes(app.db, batch, worker_id="w1", actor="worker:w1")
    assert written.discarded == 1 and len(written.changes) == 1
    stored = await app.get_job(old.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED
    assert stored.result == {"run": "new"} and stored.attempt == new.attempt
