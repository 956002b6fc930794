"""Ingest one document over HTTP, pause its ``embedding`` phase while it runs, show the
job's status derived from its phases, resume, and wait until it completed.

Needs ``jobtrack serve`` and a worker of ``examples.ingestion_phases.tasks:app`` on the
same database, and a key (``jobtrack keys create --tenant docs``); from the repository
root::

    python -m examples.ingestion_phases.run --url http://127.0.0.1:8000 --key "$KEY"
"""

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from examples.ingestion_phases.tasks import PHASES, QUEUE, TASK
from jobtrack import JobStatus
from jobtrack.client import Client

PAUSED_PHASE = "embedding"
POLL_SECONDS = 0.05
TERMINAL = {JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}


@dataclass
class Run:
    """What the script saw: every distinct job state, and the ones around the pause."""

    job_id: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    paused: list[dict[str, Any]] = field(default_factory=list)
    resumed: dict[str, Any] | None = None
    final: dict[str, Any] | None = None


def summary(job: dict[str, Any]) -> str:
    """One line: status, step, and each phase's status and progress."""
    phases = "  ".join(
        f"{p['name']}={p['status']} {p['progress']['done']:g}/{p['progress']['total'] or '?'}"
        for p in job["phases"])
    return f"{job['status']:<9} step={job['step']:<10} {phases}"


def _key(job: dict[str, Any]) -> tuple[Any, ...]:
    return (job["status"], job["step"],
            *((p["status"], p["progress"]["done"]) for p in job["phases"]))


async def _follow(jt: Client, run: Run, console: Console,
                  until: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    """Poll the job, recording each new state, until ``until(job)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        job = await jt.get_job(run.job_id)
        if not run.seen or _key(run.seen[-1]) != _key(job):
            run.seen.append(job)
            console.print(f"  {summary(job)}")
        if until(job):
            return job
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting: the job is {summary(job)}")
        await asyncio.sleep(POLL_SECONDS)


async def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Until the server answers ``GET /readyz`` (it may still be starting)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=2) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} is not ready after {timeout:g} s")
            await asyncio.sleep(0.2)


async def ingest(url: str, key: str, *, document: str = "report.pdf", pages: int = 5,
                 hold: float = 2.0, timeout: float = 60.0,
                 console: Console | None = None) -> Run:
    """Enqueue, pause ``embedding`` while it runs, hold ``hold`` seconds, resume, wait."""
    console = console or Console(highlight=False, soft_wrap=True)
    await wait_ready(url)
    async with Client(url, key) as jt:
        created = await jt.create_job(QUEUE, TASK, data={"document": document, "pages": pages},
                                      phases=PHASES)
        run = Run(created["jobId"], seen=[created["job"]])
        console.print(f"job {run.job_id} enqueued\n  {summary(created['job'])}")

        await _follow(jt, run, console, lambda j: j["step"] == PAUSED_PHASE, timeout)
        paused = await jt.request("POST", f"/jobs/{run.job_id}/phases/{PAUSED_PHASE}/pause")
        console.print(f"paused {PAUSED_PHASE}:\n  {summary(paused)}")
        run.paused.append(paused)
        # the worker stops at its next checkpoint; meanwhile the job stays running
        for _ in range(3):
            await asyncio.sleep(hold / 3)
            run.paused.append(await jt.get_job(run.job_id))
            console.print(f"  {summary(run.paused[-1])}")

        run.resumed = await jt.request("POST",
                                       f"/jobs/{run.job_id}/phases/{PAUSED_PHASE}/resume")
        console.print(f"resumed {PAUSED_PHASE}:\n  {summary(run.resumed)}")
        run.final = await _follow(jt, run, console, lambda j: j["status"] in TERMINAL,
                                  timeout)
        console.print(f"job {run.final['status']}: {run.final['result']}")
        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("JOBTRACK_KEY"),
                        help="an API key (default: $JOBTRACK_KEY)")
    parser.add_argument("--document", default="report.pdf")
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    if not args.key:
        parser.error("--key (or JOBTRACK_KEY) is required")
    run = asyncio.run(ingest(args.url, args.key, document=args.document, pages=args.pages))
    raise SystemExit(0 if run.final and run.final["status"] == JobStatus.COMPLETED else 1)


if __name__ == "__main__":
    main()
