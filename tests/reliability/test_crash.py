"""R1: kill -9 workers at random while 2,000 jobs run; none is lost, none left running.

Several ``jobtrack worker`` processes share one database (a SQLite file, and PostgreSQL)
with a short lease. While they run, one chosen at random is SIGKILLed every half second
and a replacement started. Jobs of a killed worker stall; the survivors' reapers retry
them once the lease expires. At the end every job must be terminal: completed, or failed
with code ``stalled`` only when its attempts ran out.
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.store import jobs as store_jobs

JOBS = 2000
WORKERS = 3
KILLS = 8
MAX_ATTEMPTS = 6

TASKS = """
import asyncio
import jobtrack

app = jobtrack.App()

@app.task(queue="crash", max_attempts={attempts},
          retry=jobtrack.RetryPolicy(base=0.05, cap=0.2))
async def nap(ctx, ms):
    await asyncio.sleep(ms / 1000)
    return ms
"""


def _start(tmp: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobtrack", "worker", "crashtasks:app", "--concurrency", "10",
         "--no-migrate", "--log-level", "ERROR"],
        cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _counts(app: App) -> dict[JobStatus, int]:
    counts = dict.fromkeys(JobStatus, 0)
    cursor = None
    async with app.db.read() as conn:
        while True:
            page, cursor = await store_jobs.list_jobs(
                conn, store_jobs.JobFilter(tenant=None), limit=500, cursor=cursor)
            for job in page:
                counts[job.status] += 1
            if cursor is None:
                return counts


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_killing_workers_loses_no_job(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "crashtasks.py").write_text(textwrap.dedent(TASKS.format(
        attempts=MAX_ATTEMPTS)))
    env = {**os.environ, "JOBTRACK_DATABASE_URL": db_url, "JOBTRACK_LEASE_SECONDS": "1.5",
           "JOBTRACK_REAP_INTERVAL_SECONDS": "0.3"}
    rng = random.Random(7)
    app = App(db_url)
    started = time.monotonic()
    procs: list[subprocess.Popen[bytes]] = []
    kills = 0
    try:
        await app.enqueue_many("nap", [{"ms": rng.randint(10, 60)} for _ in range(JOBS)],
                               queue="crash", max_attempts=MAX_ATTEMPTS)
        procs = [_start(tmp_path, env) for _ in range(WORKERS)]
        born = {p.pid: time.monotonic() for p in procs}
        while (await _counts(app))[JobStatus.COMPLETED] == 0:  # they run (slow machines)
            await asyncio.sleep(0.1)
        while kills < KILLS and (await _counts(app))[JobStatus.PENDING] > 0:
            # a worker that lived a second has claimed jobs: killing it strands them
            grown = [p for p in procs if time.monotonic() - born[p.pid] >= 1.0]
            if grown:
                victim = rng.choice(grown)
                procs.remove(victim)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                fresh = _start(tmp_path, env)
                born[fresh.pid] = time.monotonic()
                procs.append(fresh)
            await asyncio.sleep(0.5)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            counts = await _counts(app)
            if counts[JobStatus.PENDING] == counts[JobStatus.RUNNING] == 0:
                break
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        counts = await _counts(app)
        async with app.db.read() as conn:
            failed, _ = await store_jobs.list_jobs(
                conn, store_jobs.JobFilter(tenant=None, status=JobStatus.FAILED), limit=JOBS)
            retried_page, _ = await store_jobs.list_jobs(
                conn, store_jobs.JobFilter(tenant=None), limit=JOBS)
        retried = sum(1 for j in retried_page if j.attempt > 1)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await app.close()
    print(f"\nR1 {db_url.split(':')[0]}: {JOBS} jobs, {kills} kills (SIGKILL), "
          f"{retried} retried, {counts[JobStatus.COMPLETED]} completed, "
          f"{counts[JobStatus.FAILED]} failed, {elapsed:.1f} s")
    assert sum(counts.values()) == JOBS  # none lost
    assert counts[JobStatus.RUNNING] == 0 and counts[JobStatus.PENDING] == 0
    assert counts[JobStatus.COMPLETED] + counts[JobStatus.FAILED] == JOBS
    for job in failed:  # failed only as a stall on the last attempt
        assert job.error is not None and job.error.get("code") == "stalled"
        assert job.attempt == job.max_attempts
    assert kills > 0 and retried > 0  # the kills really hit running jobs
