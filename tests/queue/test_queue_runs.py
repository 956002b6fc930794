"""A worker tells its runs apart by attempt: a job cancelled and retried while its old
run still goes, then claimed again by the same worker, is two runs, each with its own
bookkeeping (slot, lease, outcome)."""

import asyncio
from datetime import UTC, datetime

from jobtrack.domain.planner import plan_retry, plan_update
from jobtrack.domain.records import Job, JobUpdate
from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.settings import Settings
from jobtrack.store.jobs import change_job
from tests.queue.conftest import Running


async def _stored(app: App, job_id: str) -> Job:
    job = await app.get_job(job_id)
    assert job is not None
    return job


async def test_a_run_of_a_new_attempt_beside_the_old_one_is_its_own(
    settings: Settings, running: Running
) -> None:
    # a short lease so that a heartbeat that stopped shows within seconds
    app = App(settings=settings.model_copy(update={"lease_seconds": 1.5}))
    started = {1: asyncio.Event(), 2: asyncio.Event()}
    release = {1: asyncio.Event(), 2: asyncio.Event()}

    @app.task
    async def block(ctx: JobContext) -> dict[str, int]:
        started[ctx.attempt].set()
        await release[ctx.attempt].wait()  # no checkpoint: it does not see the cancel
        return {"attempt": ctx.attempt}

    try:
        job = await app.enqueue("block")
        async with running(app, concurrency=2) as worker:
            await asyncio.wait_for(started[1].wait(), 10)
            now = datetime.now(UTC)
            async with app.db.write() as conn:  # an outside report cancels it ...
                await change_job(conn, job.id, lambda j: plan_update(
                    j, JobUpdate(status=JobStatus.CANCELLED), now),
                    tenant=None, actor="test", now=now)
            async with app.db.write() as conn:  # ... and an operator retries it
                await change_job(conn, job.id, lambda j: plan_retry(j, now),
                                 tenant=None, actor="test", now=now)
            await asyncio.wait_for(started[2].wait(), 10)  # same worker, same job id
            assert (await _stored(app, job.id)).worker_id == worker.id

            release[1].set()  # the old run ends first: its outcome is not the job's
            for _ in range(1000):
                if worker.stats.discarded:
                    break
                await asyncio.sleep(0.01)
            assert worker.stats.discarded == 1
            # the new run is still held: its lease keeps being renewed, it is not reaped
            lease = (await _stored(app, job.id)).lease_expires_at
            for _ in range(1000):
                now_job = await _stored(app, job.id)
                if now_job.lease_expires_at != lease:
                    break
                await asyncio.sleep(0.01)
            assert now_job.status is JobStatus.RUNNING and now_job.attempt == 2
            assert now_job.lease_expires_at != lease
            assert len(worker._running) == 1  # the new run still has its slot

            release[2].set()
            done = await app.wait(job.id, timeout=10)
            for _ in range(1000):
                if not worker._held:
                    break
                await asyncio.sleep(0.01)
            assert not worker._running and not worker._held
        assert done.status is JobStatus.COMPLETED and done.attempt == 2
        assert done.result == {"attempt": 2}
        assert worker.stats.completed == 1 and worker.stats.reaped == 0
        assert worker.stats.lost == 0
    finally:
        await app.close()
