"""Inside a task: phases and progress seen from another connection, pause and resume at a
checkpoint, cancel at the next checkpoint, and coalesced progress writes."""

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from jobtrack.domain.planner import plan_cancel, plan_pause
from jobtrack.domain.records import Job
from jobtrack.domain.status import JobStatus, PhaseStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext, SyncJobContext
from jobtrack.queue.worker import Worker
from jobtrack.store import events as store_events
from jobtrack.store import jobs as store_jobs
from jobtrack.store.engine import Database

Running = Callable[..., AbstractAsyncContextManager[Worker]]


async def _seen(db_url: str, job_id: str) -> Job:
    """The job as another process would read it: a separate engine and connection."""
    other = Database(db_url)
    try:
        async with other.read() as conn:
            job = await store_jobs.get_job(conn, job_id, tenant=None)
    finally:
        await other.dispose()
    assert job is not None
    return job


async def _until(app: App, job_id: str, check: Callable[[Job], bool]) -> Job:
    for _ in range(500):
        job = await app.get_job(job_id)
        assert job is not None
        if check(job):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never got there: {job}")


async def _change(app: App, job_id: str, plan: Callable[[Job, datetime], object]) -> None:
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        await store_jobs.change_job(conn, job_id, lambda j: plan(j, now),  # type: ignore
                                    tenant=None, actor="api:test", now=now)


async def test_phases_and_progress_are_visible_while_it_runs(
    app: App, running: Running, db_url: str
) -> None:
    gate = asyncio.Event()

    @app.task(phases=["loading", "indexing"])
    async def ingest(ctx: JobContext, pages: int) -> str:
        async with ctx.phase("loading", total=pages) as phase:
            for _ in range(3):
                await phase.advance()
            await gate.wait()
            await phase.advance(pages - 3)
        async with ctx.phase("indexing", total=1) as phase:
            await phase.advance()
        return "indexed"

    job = await app.enqueue("ingest", pages=10)
    async with running(app):
        await _until(app, job.id, lambda j: bool(j.phases and j.phases[0].done == 3))
        seen = await _seen(db_url, job.id)
        assert seen.status is JobStatus.RUNNING and seen.step == "loading"
        assert [(p.status, p.done, p.total) for p in seen.phases] == [
            (PhaseStatus.RUNNING, 3, 10), (PhaseStatus.NOT_STARTED, 0, None)]
        gate.set()
        done = await app.wait(job.id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == "indexed"
    assert [(p.status, p.done) for p in done.phases] == [
        (PhaseStatus.COMPLETED, 10), (PhaseStatus.COMPLETED, 1)]


async def test_a_paused_phase_waits_at_the_checkpoint_until_resumed(
    app: App, running: Running
) -> None:
    @app.task(phases=["work"])
    async def steps(ctx: JobContext) -> float:
        async with ctx.phase("work", total=200) as phase:
            for _ in range(200):
                await asyncio.sleep(0.005)
                await phase.advance()
            return phase.done

    job = await app.enqueue("steps")
    async with running(app):
        await _until(app, job.id, lambda j: j.phases[0].done >= 5)
        await _change(app, job.id, lambda j, now: plan_pause(j, now))
        await _until(app, job.id, lambda j: j.phases[0].status is PhaseStatus.PAUSED)
        await asyncio.sleep(0.3)  # the worker reaches its next checkpoint and waits there
        paused = await app.get_job(job.id)
        await asyncio.sleep(0.6)
        still = await app.get_job(job.id)
        assert paused is not None and still is not None
        assert still.status is JobStatus.RUNNING
        assert still.phases[0].status is PhaseStatus.PAUSED
        assert still.phases[0].done == paused.phases[0].done < 200
        await _change(app, job.id, lambda j, now: plan_pause(j, now, resume=True))
        done = await app.wait(job.id, timeout=20)
    assert done.status is JobStatus.COMPLETED and done.result == 200


async def test_a_cancel_request_stops_the_job_at_its_next_checkpoint(
    app: App, running: Running
) -> None:
    @app.task(phases=["a", "b"], max_attempts=3)
    async def endless(ctx: JobContext) -> None:
        async with ctx.phase("a") as phase:
            while True:
                await asyncio.sleep(0.005)
                await phase.advance()

    job = await app.enqueue("endless")
    async with running(app):
        await _until(app, job.id, lambda j: j.phases[0].done >= 3)
        await _change(app, job.id, plan_cancel)
        done = await app.wait(job.id, timeout=10)
    assert done.status is JobStatus.CANCELLED and done.attempt == 1
    assert [p.status for p in done.phases] == [PhaseStatus.CANCELLED, PhaseStatus.NOT_STARTED]


async def test_plain_tasks_have_the_same_phases_and_cancel(app: App, running: Running) -> None:
    @app.task(phases=["count", "report"])
    def counting(ctx: SyncJobContext, n: int) -> int:
        with ctx.phase("count", total=n) as phase:
            for _ in range(n):
                phase.advance()
        with ctx.phase("report"):
            pass
        return n

    @app.task
    def spinning(ctx: SyncJobContext) -> None:
        while True:
            time.sleep(0.005)
            ctx.progress(1, None)

    counted = await app.enqueue("counting", n=25)
    spun = await app.enqueue("spinning")
    async with running(app):
        done = await app.wait(counted.id, timeout=10)
        await _until(app, spun.id, lambda j: j.progress is not None)
        await _change(app, spun.id, plan_cancel)
        cancelled = await app.wait(spun.id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == 25
    assert [(p.status, p.done) for p in done.phases] == [
        (PhaseStatus.COMPLETED, 25), (PhaseStatus.COMPLETED, 0)]
    assert cancelled.status is JobStatus.CANCELLED


async def test_progress_writes_are_coalesced(app: App, running: Running) -> None:
    app.settings = app.settings.model_copy(update={"progress_interval_seconds": 0.2})

    @app.task(phases=["tight"])
    async def tight(ctx: JobContext) -> None:
        async with ctx.phase("tight", total=20000) as phase:
            for i in range(20000):
                await phase.advance()
                if i % 1000 == 0:
                    await asyncio.sleep(0.03)  # about 0.6 s in all

    job = await app.enqueue("tight")
    async with running(app):
        done = await app.wait(job.id, timeout=20)
    async with app.db.read() as conn:
        seen = await store_events.read_after(conn, 0, job_id=job.id)
    progress = [e for e in seen if e.type == "job.progress"]
    assert done.status is JobStatus.COMPLETED and done.phases[0].done == 20000
    assert 1 <= len(progress) <= 8, len(progress)


async def test_progress_of_a_job_without_phases(app: App, running: Running) -> None:
    gate = asyncio.Event()

    @app.task
    async def download(ctx: JobContext) -> None:
        await ctx.progress(40, 100)
        await gate.wait()

    job = await app.enqueue("download")
    async with running(app):
        seen = await _until(app, job.id, lambda j: j.progress is not None)
        gate.set()
        await app.wait(job.id, timeout=10)
    assert seen.progress is not None and seen.progress.percentage == 40.0


async def test_throttled_progress_is_stored_without_another_checkpoint(
    app: App, running: Running, db_url: str
) -> None:
    """Two advances inside the throttle interval, then a long step with no checkpoint: the
    trailing write still stores what was reported, while the step runs."""
    app.settings = app.settings.model_copy(update={"progress_interval_seconds": 0.5})
    gate = asyncio.Event()
    threaded = threading.Event()

    @app.task(phases=["loading", "indexing"])
    async def ingest(ctx: JobContext) -> None:
        async with ctx.phase("loading", total=10) as phase:
            await phase.advance()
            await phase.advance()
            await gate.wait()  # a long step: no checkpoint until it ends

    @app.task(phases=["loading"])
    def ingest_sync(ctx: SyncJobContext) -> None:
        with ctx.phase("loading", total=10) as phase:
            phase.advance()
            phase.advance(2)
            threaded.wait(20)

    @app.task
    async def download(ctx: JobContext) -> None:
        await ctx.progress(1, 100)
        await ctx.progress(7, 100)
        await gate.wait()

    phased = await app.enqueue("ingest")
    synced = await app.enqueue("ingest_sync")
    plain = await app.enqueue("download")
    try:
        async with running(app, concurrency=3):
            await _until(app, phased.id, lambda j: j.phases[0].done == 2)
            await _until(app, synced.id, lambda j: j.phases[0].done == 3)
            await _until(app, plain.id, lambda j: j.progress is not None
                         and j.progress.done == 7)
            seen = await _seen(db_url, phased.id)
            assert (seen.phases[0].done, seen.phases[0].total) == (2, 10)
            gate.set()
            threaded.set()
            for job in (phased, synced, plain):
                assert (await app.wait(job.id, timeout=10)).status is JobStatus.COMPLETED
    finally:
        gate.set()
        threaded.set()
