"""``jobtrack jobs ls|show|watch|cancel|retry`` against a real database, with the jobs
made and moved through the HTTP API (as a submitter and an external worker would)."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from jobtrack.domain.status import JobStatus, PhaseStatus
from jobtrack.settings import Settings
from support.api import Api, running
from support.cli import invoke
from support.keys import key_at

MISSING = "01a209ed-0000-7000-8000-000000000000"


@dataclass
class Jobs:
    """The jobs a test starts from: one per status of interest, tenant ``acme`` unless
    said; ``wire`` holds each job as ``GET /jobs/{id}`` answers it."""

    phased: str  # running, phase "load" half done
    failed: str
    pending: str
    other: str  # tenant "globex", queue "mail"
    wire: dict[str, dict[str, Any]]


@asynccontextmanager
async def api(db_url: str) -> AsyncIterator[Api]:
    """An API app on the database, with a key per tenant (``acme`` unless said)."""
    keys = {tenant: await key_at(db_url, tenant) for tenant in ("acme", "globex")}
    async with running(Settings(database_url=db_url, rate_limit_per_minute=1_000_000,
                                webhooks_in_api=False), keys, who="acme") as started:
        yield started


async def _setup(db_url: str) -> Jobs:
    async with api(db_url) as c:
        phased = (await c.ok("POST", "/jobs", status=201, json={
            "queueName": "ingest", "name": "ingest", "phases": ["load", "index"],
            "data": {"documentId": "d1"}}))["jobId"]
        failed = (await c.ok("POST", "/jobs", status=201, json={
            "queueName": "ingest", "name": "ingest"}))["jobId"]
        claimed = await c.ok("POST", "/queues/ingest/claim", json={"limit": 2})
        assert {j["jobId"] for j in claimed["items"]} == {phased, failed}
        await c.ok("PATCH", f"/jobs/{phased}", json={
            "phase": {"name": "load", "progress": {"done": 5, "total": 10}}})
        await c.ok("PATCH", f"/jobs/{failed}", json={
            "status": JobStatus.FAILED.value, "error": {"message": "disk on fire"}})
        pending = (await c.ok("POST", "/jobs", status=201, json={
            "queueName": "ingest", "name": "later"}))["jobId"]
        other = (await c.ok("POST", "/jobs", "globex", 201, json={
            "queueName": "mail", "name": "send"}))["jobId"]
        wire = {}
        for job_id in (phased, failed, pending):
            wire[job_id] = await c.ok("GET", f"/jobs/{job_id}")
    return Jobs(phased, failed, pending, other, wire)


def test_jobs_ls_lists_newest_first_and_filters(db_url: str) -> None:
    jobs = asyncio.run(_setup(db_url))
    code, out, _ = invoke(db_url, "jobs", "ls")
    assert code == 0, out
    order = [out.index(j) for j in (jobs.other, jobs.pending, jobs.failed, jobs.phased)]
    assert order == sorted(order), "newest first"
    rows = {line.split("│")[-2].strip(): line for line in out.splitlines()
            if line.count("│") > 5}
    assert "running" in rows[jobs.phased] and "acme" in rows[jobs.phased]
    # the job's progress from its phases (1 of 2 phases half done), and the current phase's
    assert "25% (load 50%)" in rows[jobs.phased]
    assert "failed" in rows[jobs.failed] and "globex" in rows[jobs.other]

    code, out, _ = invoke(db_url, "jobs", "ls", "--tenant", "acme", "--status", "running")
    assert code == 0 and jobs.phased in out
    assert all(j not in out for j in (jobs.failed, jobs.pending, jobs.other))
    code, out, _ = invoke(db_url, "jobs", "ls", "--queue", "mail")
    assert jobs.other in out and jobs.phased not in out
    code, out, _ = invoke(db_url, "jobs", "ls", "--status", "queued", "--name", "later")
    assert code == 0 and jobs.pending in out and jobs.other not in out  # an alias, normalized
    code, _, err = invoke(db_url, "jobs", "ls", "--queue", "nothing-here")
    assert code == 0 and "no jobs" in err
    code, _, err = invoke(db_url, "jobs", "ls", "--status", "bogus")
    assert code == 1 and "canonical values" in err

    code, out, _ = invoke(db_url, "jobs", "ls", "--tenant", "acme", "--json", "--limit", "2")
    assert code == 0
    assert orjson.loads(out) == [jobs.wire[jobs.pending], jobs.wire[jobs.failed]]


def test_jobs_show_prints_phases_outcome_and_history(db_url: str) -> None:
    jobs = asyncio.run(_setup(db_url))
    code, out, _ = invoke(db_url, "jobs", "show", jobs.phased)
    assert code == 0, out
    assert f"job {jobs.phased} ingest running step=load queue=ingest" in out
    load = next(line for line in out.splitlines() if line.startswith("load "))
    assert PhaseStatus.RUNNING.value in load and "50%  5/10" in load
    overall = next(line for line in out.splitlines() if line.startswith("progress "))
    assert "25%  0.5/2" in overall  # by count: half of the first of two phases
    index = next(line for line in out.splitlines() if line.startswith("index "))
    assert PhaseStatus.NOT_STARTED.value in index
    assert '"documentId": "d1"' in out
    history = out[out.index("history"):]
    assert "pending" in history and "running" in history and "api:" in history

    code, out, _ = invoke(db_url, "jobs", "show", jobs.failed)
    assert code == 0 and 'error: {\n  "message": "disk on fire"' in out
    history = out[out.index("history"):].splitlines()
    assert any("running" in line and "failed" in line for line in history)

    code, out, _ = invoke(db_url, "jobs", "show", jobs.phased, "--json")
    assert code == 0 and orjson.loads(out) == jobs.wire[jobs.phased]

    for missing in (MISSING, "not-an-id"):
        code, _, err = invoke(db_url, "jobs", "show", missing)
        assert code == 1 and "not found" in err


def test_jobs_cancel_and_retry(db_url: str) -> None:
    jobs = asyncio.run(_setup(db_url))
    code, _, err = invoke(db_url, "jobs", "cancel", jobs.pending)
    assert code == 0 and f"job {jobs.pending} cancelled" in err
    code, _, err = invoke(db_url, "jobs", "cancel", jobs.pending)
    assert code == 1 and "cannot move" in err
    code, _, err = invoke(db_url, "jobs", "cancel", jobs.phased)
    assert code == 0 and "cancel requested" in err
    code, _, err = invoke(db_url, "jobs", "retry", jobs.failed)
    # its one attempt was used up: the retry gives it one more, never "attempt 2 of 1"
    assert code == 0 and "pending again (attempt 2 of 2)" in err
    code, _, err = invoke(db_url, "jobs", "retry", jobs.phased)
    assert code == 1 and "cannot move" in err
    code, _, err = invoke(db_url, "jobs", "cancel", MISSING)
    assert code == 1 and "not found" in err

    code, out, _ = invoke(db_url, "jobs", "ls", "--json", "--tenant", "acme")
    by_id = {j["jobId"]: j for j in orjson.loads(out)}
    assert by_id[jobs.pending]["status"] == JobStatus.CANCELLED
    assert by_id[jobs.phased]["status"] == JobStatus.RUNNING
    assert by_id[jobs.phased]["cancelRequested"] is True
    assert by_id[jobs.failed]["status"] == JobStatus.PENDING
    assert (by_id[jobs.failed]["attempt"], by_id[jobs.failed]["maxAttempts"]) == (2, 2)
    assert by_id[jobs.failed]["attempt"] == 2 and by_id[jobs.failed]["error"] is None
    code, out, _ = invoke(db_url, "jobs", "show", jobs.failed)
    history = out[out.index("history"):].splitlines()
    assert any("failed" in line and "pending" in line and line.rstrip().endswith("cli")
               for line in history)


async def _finish(db_url: str, job_id: str, status: JobStatus) -> None:
    await asyncio.sleep(0.4)
    async with api(db_url) as c:
        await c.ok("PATCH", f"/jobs/{job_id}", json={
            "phase": {"name": "load", "status": PhaseStatus.COMPLETED.value}})
        await c.ok("PATCH", f"/jobs/{job_id}", json={"status": status.value})


def test_jobs_watch_follows_the_job_to_its_end(db_url: str) -> None:
    jobs = asyncio.run(_setup(db_url))

    def later() -> None:
        asyncio.run(_finish(db_url, jobs.phased, JobStatus.COMPLETED))

    finisher = threading.Thread(target=later)
    finisher.start()
    started = time.monotonic()
    code, out, _ = invoke(db_url, "jobs", "watch", jobs.phased, "--interval", "0.05")
    finisher.join()
    assert time.monotonic() - started >= 0.4, "it waited for the job to finish"
    assert code == 0, out
    assert f"job {jobs.phased} ingest completed" in out
    assert out.rstrip().splitlines()[-1].split()[3] == JobStatus.COMPLETED.value  # history

    code, out, _ = invoke(db_url, "jobs", "watch", jobs.failed)
    assert code == 1 and "failed" in out  # finished already: drawn once, exit 1
