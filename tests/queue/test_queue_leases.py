"""Leases: stalled jobs are reaped (retried or failed ``stalled``), heartbeats keep long
jobs alive, a worker that lost a job never writes over it, and two workers never run the
same job."""

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.reaper import reap
from jobtrack.queue.worker import Worker
from jobtrack.store import claim as store_claim
from jobtrack.store import events as store_events

Running = Callable[..., AbstractAsyncContextManager[Worker]]


async def _claim_as_dead_worker(app: App, lease_seconds: float) -> None:
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        got = await store_claim.claim(conn, queues=["default"], worker_id="dead-worker",
                                      limit=10, now=now,
                                      lease_until=now + timedelta(seconds=lease_seconds))
    assert got


async def test_an_expired_lease_is_retried_while_attempts_remain(app: App) -> None:
    job = await app.enqueue("orphan", _max_attempts=2)
    await _claim_as_dead_worker(app, lease_seconds=-1)
    changes = await reap(app.db)
    assert [c.after.id for c in changes] == [job.id]
    stored = await app.get_job(job.id)
    assert stored is not None and stored.status is JobStatus.PENDING and stored.attempt == 2
    assert stored.error is not None and stored.error["code"] == "stalled"
    assert stored.worker_id is None
    assert await reap(app.db) == []  # nothing left to reap


async def test_an_expired_lease_on_the_last_attempt_fails_stalled(
    app: App, running: Running
) -> None:
    @app.task
    async def orphan(ctx: JobContext) -> None: ...

    job = await app.enqueue("orphan")
    await _claim_as_dead_worker(app, lease_seconds=0.3)
    async with running(app):  # its reaper finds the dead worker's job
        done = await app.wait(job.id, timeout=10)
    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error["code"] == "stalled"
    assert "dead-worker" in done.error["message"]
    async with app.db.read() as conn:
        history = await store_events.history(conn, job.id)
    assert [e.to_status for e in history] == ["pending", "running", "failed"]


async def test_a_job_completed_after_a_stall_keeps_no_error(
    app: App, running: Running
) -> None:
    """Attempt 1 stalled, attempt 2 completed: the completed job carries no error."""
    @app.task
    async def orphan(ctx: JobContext) -> str:
        return f"attempt {ctx.attempt}"

    job = await app.enqueue("orphan", _max_attempts=2)
    await _claim_as_dead_worker(app, lease_seconds=-1)
    await reap(app.db)
    async with running(app):
        done = await app.wait(job.id, timeout=10)
    assert (done.status, done.attempt, done.result) == (JobStatus.COMPLETED, 2, "attempt 2")
    assert done.error is None


async def test_a_worker_never_reaps_the_jobs_it_holds(app: App) -> None:
    """Their lease ran out while the database was down (R6): the holder is alive and
    writes their outcome when it answers again; only other reapers may stall them."""
    job = await app.enqueue("orphan", _max_attempts=1)
    await _claim_as_dead_worker(app, lease_seconds=-1)
    assert await reap(app.db, held={job.id}) == []
    stored = await app.get_job(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert [c.after.id for c in await reap(app.db)] == [job.id]


async def test_a_live_lease_is_not_reaped(app: App) -> None:
    job = await app.enqueue("busy")
    await _claim_as_dead_worker(app, lease_seconds=60)
    assert await reap(app.db) == []
    stored = await app.get_job(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING


async def test_heartbeats_keep_a_long_job_alive(app: App, running: Running) -> None:
    app.settings = app.settings.model_copy(update={"lease_seconds": 0.6,
                                                   "reap_interval_seconds": 0.1})

    @app.task(max_attempts=3)
    async def long(ctx: JobContext) -> str:
        await asyncio.sleep(2.0)  # more than three leases
        return "done"

    job = await app.enqueue("long")
    async with running(app) as worker:
        done = await app.wait(job.id, timeout=15)
    assert done.status is JobStatus.COMPLETED and done.attempt == 1
    assert worker.stats.reaped == 0 and worker.stats.lost == 0


async def test_a_worker_that_lost_its_job_never_writes_over_it(
    app: App, running: Running
) -> None:
    started = asyncio.Event()
    attempts: list[int] = []

    @app.task(max_attempts=2, retry=RetryPolicy(base=60, jitter=0))
    async def slow(ctx: JobContext) -> str:
        attempts.append(ctx.attempt)
        started.set()
        await asyncio.sleep(1.0)
        return "late"

    app.settings = app.settings.model_copy(update={"lease_seconds": 0.9})
    job = await app.enqueue("slow")
    async with running(app) as worker:
        await asyncio.wait_for(started.wait(), 10)
        # another worker's reaper, with its clock past the lease, takes the job away
        reaped = await reap(app.db, now=datetime.now(UTC) + timedelta(seconds=5))
        assert [c.after.id for c in reaped] == [job.id]
        await asyncio.sleep(1.5)
    stored = await app.get_job(job.id)
    assert stored is not None and attempts == [1]
    assert stored.status is JobStatus.PENDING and stored.attempt == 2  # not "completed"
    assert stored.result is None and stored.error is not None
    assert stored.error["code"] == "stalled"
    assert worker.stats.completed == 0
    assert worker.stats.lost + worker.stats.discarded >= 1


async def test_two_workers_never_run_the_same_job(pg_url: str, running: Running) -> None:
    from jobtrack.settings import Settings

    settings = Settings(database_url=pg_url, reap_interval_seconds=0.2)
    ran: list[str] = []
    apps = [App(settings=settings), App(settings=settings)]
    for a in apps:
        @a.task
        async def work(ctx: JobContext, i: int) -> int:
            ran.append(ctx.id)
            await asyncio.sleep(0.001)
            return i

    jobs = await apps[0].enqueue_many("work", [{"i": i} for i in range(400)])
    try:
        async with running(apps[0], concurrency=8) as w1, \
                running(apps[1], concurrency=8) as w2:
            for job in jobs:
                await apps[0].wait(job.id, timeout=30)
    finally:
        for a in apps:
            await a.close()
    counts = Counter(ran)
    assert len(counts) == 400 and set(counts.values()) == {1}
    assert w1.stats.completed + w2.stats.completed == 400
    assert w1.stats.completed > 0 and w2.stats.completed > 0


async def test_a_heartbeat_skips_a_row_a_writer_holds_and_still_counts_it_held(
    pg_url: str,
) -> None:
    """The heartbeat never waits on a row lock (so it cannot deadlock with the worker's own
    flush); a held row is not renewed this round, and not reported lost either."""
    from sqlalchemy import text

    from jobtrack.store import leases

    app = App(pg_url)
    try:
        a = await app.enqueue("orphan")
        b = await app.enqueue("orphan")
        await _claim_as_dead_worker(app, lease_seconds=30)
        later = datetime.now(UTC) + timedelta(seconds=300)
        async with app.db.write() as holder:  # a writer holds job a's row
            await holder.execute(text("SELECT id FROM jobs WHERE id = :i FOR UPDATE"),
                                 {"i": a.id})
            async with app.db.write() as conn:
                kept = await asyncio.wait_for(leases.renew_leases(
                    conn, worker_id="dead-worker", ids=[a.id, b.id], lease_until=later), 5)
        assert kept == {a.id, b.id}
        stored_a, stored_b = await app.get_job(a.id), await app.get_job(b.id)
        assert stored_b is not None and stored_b.lease_expires_at == later
        assert stored_a is not None and stored_a.lease_expires_at != later
    finally:
        await app.close()
