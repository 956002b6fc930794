"""Graceful shutdown loses nothing; retention deletes only old finished jobs; the
``jobtrack worker`` and ``jobtrack retention`` commands."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobtrack.domain.planner import plan_update
from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.retention import purge
from jobtrack.queue.worker import Worker
from jobtrack.store import events as store_events


async def _statuses(app: App, ids: list[str]) -> list[JobStatus]:
    out = []
    for job_id in ids:
        job = await app.get_job(job_id)
        assert job is not None
        out.append(job.status)
    return out


async def test_graceful_shutdown_finishes_running_jobs_and_leaves_the_rest(app: App) -> None:
    started: list[str] = []

    @app.task
    async def work(ctx: JobContext) -> str:
        started.append(ctx.id)
        await asyncio.sleep(0.3)
        return "done"

    jobs = await app.enqueue_many("work", [{} for _ in range(12)])
    worker = Worker(app, concurrency=4, grace_seconds=10)
    task = asyncio.create_task(worker.run())
    while len(started) < 4:
        await asyncio.sleep(0.01)
    worker.stop()
    stats = await asyncio.wait_for(task, 15)
    statuses = await _statuses(app, [j.id for j in jobs])
    assert statuses.count(JobStatus.COMPLETED) == len(started) == stats.completed
    assert statuses.count(JobStatus.PENDING) == 12 - len(started)
    assert JobStatus.RUNNING not in statuses
    second = Worker(app, concurrency=4)  # another worker picks up the rest
    task = asyncio.create_task(second.run())
    for job in jobs:
        await app.wait(job.id, timeout=10)
    second.stop()
    await task
    assert await _statuses(app, [j.id for j in jobs]) == [JobStatus.COMPLETED] * 12


async def test_jobs_past_the_grace_period_are_interrupted_and_retried(app: App) -> None:
    @app.task(max_attempts=2)
    async def stubborn(ctx: JobContext) -> None:
        await asyncio.sleep(30)

    retried = await app.enqueue("stubborn")
    last_try = await app.enqueue("stubborn", _max_attempts=1)
    worker = Worker(app, concurrency=4, grace_seconds=0.2)
    task = asyncio.create_task(worker.run())
    while worker.stats.claimed < 2:
        await asyncio.sleep(0.01)
    worker.stop()
    await asyncio.wait_for(task, 10)
    again = await app.get_job(retried.id)
    final = await app.get_job(last_try.id)
    assert again is not None and again.status is JobStatus.PENDING and again.attempt == 2
    assert again.error is not None and again.error["code"] == "interrupted"
    assert again.run_at is not None and again.run_at <= datetime.now(UTC)
    assert final is not None and final.status is JobStatus.FAILED
    assert final.error is not None and final.error["code"] == "interrupted"


async def test_retention_deletes_only_old_finished_jobs(app: App) -> None:
    @app.task
    async def quick(ctx: JobContext) -> None: ...

    done = await app.enqueue("quick")
    waiting = await app.enqueue("nobody-runs-this")
    worker = Worker(app)
    task = asyncio.create_task(worker.run())
    await app.wait(done.id, timeout=10)
    worker.stop()
    await task
    now = datetime.now(UTC)
    async with app.db.write() as conn:  # a progress-only event of the waiting job
        await store_events.insert_events(conn, [{
            **store_events.created_row(waiting, "test"), "type": "job.progress",
            "to_status": None, "at": now - timedelta(days=30)}])
    kept = await purge(app.db, job_days=1, event_days=7, now=now)
    assert (kept.jobs, kept.events) == (0, 1)  # only the old progress event went
    assert await app.get_job(done.id) is not None

    later = await purge(app.db, job_days=1, event_days=7, now=now + timedelta(days=2))
    assert later.jobs == 1
    assert await app.get_job(done.id) is None
    assert await app.get_job(waiting.id) is not None
    async with app.db.read() as conn:
        assert await store_events.history(conn, done.id) == []
        assert [e.type for e in await store_events.history(conn, waiting.id)] == [
            "job.created"]


async def test_retention_deletes_finished_flows_whole(app: App) -> None:
    from jobtrack.domain.flows import FlowNode
    from jobtrack.store import flows as store_flows
    from jobtrack.store import jobs as store_jobs

    now = datetime.now(UTC)
    async with app.db.write() as conn:
        flow, members = await store_flows.create_flow(
            conn, FlowNode(name="parent", queue_name="q",
                           children=[FlowNode(name="child", queue_name="q")]),
            tenant="default", flowname="f", now=now, actor="test", max_depth=5,
            max_jobs=10, default_max_attempts=1)
        for member in sorted(members, key=lambda j: j.id, reverse=True):
            for status in (JobStatus.RUNNING, JobStatus.COMPLETED):
                await store_jobs.change_job(
                    conn, member.id,
                    lambda j, s=status: plan_update(j, _update(s), now),
                    tenant=None, actor="test", now=now)
    report = await purge(app.db, job_days=1, event_days=None, now=now + timedelta(days=2))
    assert (report.flows, report.jobs) == (1, 2)
    async with app.db.read() as conn:
        assert await store_flows.get_flow(conn, flow.id, tenant=None) is None


def _update(status: JobStatus):  # type: ignore[no-untyped-def]
    from jobtrack.domain.records import JobUpdate

    return JobUpdate(status=status)


def test_the_worker_command_runs_a_modules_tasks(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text(textwrap.dedent("""
        import jobtrack

        app = jobtrack.App()

        @app.task(queue="files")
        async def count(ctx, text):
            return len(text)

        @app.task(queue="files")
        def shout(ctx, text):
            return text.upper()
    """))
    env = {**os.environ, "JOBTRACK_DATABASE_URL": db_url}

    async def enqueue() -> list[str]:
        app = App(db_url)
        try:
            return [(await app.enqueue("count", text="four", _queue="files")).id,
                    (await app.enqueue("shout", text="hi", _queue="files")).id]
        finally:
            await app.close()

    ids = asyncio.run(enqueue())
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrack", "worker", "mytasks:app", "--queues", "files",
         "--concurrency", "2"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)

    async def wait() -> list[object]:
        app = App(db_url)
        try:
            return [(await app.wait(i, timeout=30)).result for i in ids]
        finally:
            await app.close()

    try:
        assert asyncio.run(wait()) == [4, "HI"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "2 completed" in err  # the worker's stop line, in words

    out = subprocess.run([sys.executable, "-m", "jobtrack", "retention", "--days", "1"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "deleted 0 job(s)" in out.stderr
    missing = subprocess.run([sys.executable, "-m", "jobtrack", "retention"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--days" in missing.stderr


def test_a_second_sigterm_interrupts_the_running_jobs_at_once(
    db_url: str, tmp_path: Path
) -> None:
    """The first signal starts a long grace period; the second one cuts it short: the
    running job is interrupted (failed ``interrupted`` on its last attempt) and the
    process exits, without waiting out the grace."""
    (tmp_path / "longtasks.py").write_text(textwrap.dedent("""
        import asyncio
        import jobtrack

        app = jobtrack.App()

        @app.task
        async def long(ctx):
            await asyncio.sleep(3600)
    """))
    env = {**os.environ, "JOBTRACK_DATABASE_URL": db_url}

    async def enqueue() -> str:
        app = App(db_url)
        try:
            return (await app.enqueue("long", _max_attempts=1)).id
        finally:
            await app.close()

    async def status_of(job_id: str) -> JobStatus:
        app = App(db_url)
        try:
            for _ in range(300):
                job = await app.get_job(job_id)
                assert job is not None
                if job.status is not JobStatus.PENDING:
                    return job.status
                await asyncio.sleep(0.1)
            return job.status
        finally:
            await app.close()

    job_id = asyncio.run(enqueue())
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrack", "worker", "longtasks:app", "--grace", "600"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert asyncio.run(status_of(job_id)) is JobStatus.RUNNING
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the drain is waiting out the grace period now
            seen.append(line)
            if "waiting up to" in line:
                break
        assert any("waiting up to 600.0 s" in line for line in seen), seen
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "interrupting 1 job(s)" in err

    async def final() -> dict[str, object] | None:
        app = App(db_url)
        try:
            job = await app.get_job(job_id)
            assert job is not None and job.status is JobStatus.FAILED
            return dict(job.error or {})
        finally:
            await app.close()

    error = asyncio.run(final())
    assert error is not None and error["code"] == "interrupted"
