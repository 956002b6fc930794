"""What ``jobtrack demo`` runs: a real flow on the embedded database, with live progress.

It enqueues an ingestion flow (:mod:`jobtrack.examples.ingestion`: phased document jobs
on two queues, and a parent that waits for them), starts real ``jobtrack worker``
processes, pauses one document's current phase and resumes it the way an API user
would, and draws every job's status, step and phase progress from the database until the
flow is finished.

:mod:`jobtrack.cli.demo` declares the command and imports this module only when it runs:
the live display, the subprocesses and the planner are no start-up cost of other commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from jobtrack.cli.common import console, migrate_if_wanted
from jobtrack.cli.flows import STYLE
from jobtrack.domain.flows import Flow
from jobtrack.domain.planner import plan_pause
from jobtrack.domain.records import Job
from jobtrack.domain.status import TERMINAL, FlowStatus, JobStatus, PhaseStatus
from jobtrack.errors import Conflict, InvalidTransition

if TYPE_CHECKING:
    from jobtrack.settings import Settings
    from jobtrack.store.engine import Database

WORKER_QUEUES = ["ingest,publish", "ingest-large,publish"]
PAUSE_SECONDS = 1.5


def run_demo(settings: Settings, documents: int, fast: bool, pause: bool,
             timeout: float) -> bool:
    """Run the demo's flow to its end; True when it completed."""
    migrate_if_wanted(settings, no_migrate=False)
    return asyncio.run(_demo(settings, documents, fast, pause, timeout))


async def _demo(settings: Settings, documents: int, fast: bool, pause: bool,
                timeout: float) -> bool:
    from jobtrack.examples.ingestion import app, collection_flow
    from jobtrack.store.engine import Database

    app.use_database_url(settings.database_url)
    console.print(f"[bold]jobtrack demo[/bold] on {settings.database_url}")
    async with app:
        flow = await app.enqueue_flow("ingest-collection",
                                      collection_flow("handbook", documents))
    console.print(f"enqueued flow [bold]{flow.id}[/bold]: {flow.progress.total} jobs; "
                  f"starting {len(WORKER_QUEUES)} workers")
    db = Database(settings.database_url)
    workers = _start_workers(settings.database_url, "0.03" if fast else "0.2")
    try:
        final = await _watch(db, flow.id, pause, timeout)
        await _summary(db, final)
    finally:
        _stop_workers(workers)
        await db.dispose()
    return final.status is FlowStatus.COMPLETED


def _start_workers(url: str, step: str) -> list[tuple[subprocess.Popen[bytes], str]]:
    env = {**os.environ, "JOBTRACK_DEMO_STEP": step}
    out = []
    for queues in WORKER_QUEUES:
        fd, log = tempfile.mkstemp(prefix="jobtrack-demo-worker-", suffix=".log")
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobtrack", "--database-url", url, "worker",
             "jobtrack.examples.ingestion:app", "--queues", queues, "--concurrency", "3",
             "--no-migrate", "--log-level", "WARNING"],
            env=env, stdout=fd, stderr=subprocess.STDOUT,
        )
        os.close(fd)  # the worker keeps its own copy of the descriptor
        out.append((proc, log))
    return out


def _stop_workers(workers: list[tuple[subprocess.Popen[bytes], str]]) -> None:
    for proc, _ in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, log in workers:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -signal.SIGTERM):
            console.print(f"[red]worker exited with {proc.returncode}[/red]; log: {log}")
        else:
            os.unlink(log)


async def _watch(db: Database, flow_id: str, pause: bool, timeout: float) -> Flow:
    from jobtrack.store import flows as store_flows

    paused: tuple[str, str, float] | None = None
    resumed = not pause
    deadline = time.monotonic() + timeout
    with Live(console=console, refresh_per_second=8, transient=False) as live:
        while True:
            async with db.read() as conn:
                flow = await store_flows.get_flow(conn, flow_id, tenant=None)
                jobs = await store_flows.flow_job_list(conn, flow_id)
            assert flow is not None
            note = ""
            if pause and paused is None:
                target = next((j for j in jobs if j.current_phase is not None
                               and j.status is JobStatus.RUNNING), None)
                if target is not None:
                    # its current phase when the pause is written (it may have moved on
                    # since this read); a job that finished meanwhile: try another later
                    with contextlib.suppress(Conflict, InvalidTransition):
                        after = await _pause(db, target.id, None, resume=False)
                        if after.current_phase is not None:
                            paused = (target.id, after.current_phase.name, time.monotonic())
            if paused is not None and not resumed:
                note = f"{paused[1]} of {_label(jobs, paused[0])} paused (as POST " \
                       f"/jobs/{{id}}/phases/{paused[1]}/pause would); resuming shortly"
                if time.monotonic() - paused[2] > PAUSE_SECONDS:
                    await _pause(db, paused[0], paused[1], resume=True)
                    resumed = True
            live.update(_render(flow, jobs, note))
            if flow.status.value in {s.value for s in TERMINAL} or time.monotonic() > deadline:
                return flow
            await asyncio.sleep(0.15)


async def _pause(db: Database, job_id: str, phase: str | None, *, resume: bool) -> Job:
    from jobtrack.store.jobs import change_job

    now = datetime.now(UTC)
    async with db.write() as conn:
        return await change_job(
            conn, job_id, lambda job: plan_pause(job, now, phase, resume=resume),
            tenant=None, actor="demo", now=now)


def _label(jobs: list[Job], job_id: str) -> str:
    job = next(j for j in jobs if j.id == job_id)
    return str(job.data.get("document") or job.name)


def _render(flow: Flow, jobs: list[Job], note: str) -> Group:
    p = flow.progress
    head = Table.grid(padding=(0, 1))
    head.add_row(
        Text(f"flow {flow.flowname}", style="bold"),
        Text(flow.status.value, style=STYLE[flow.status.value]),
        ProgressBar(total=max(p.total, 1), completed=p.completed, width=30),
        Text(f"{p.completed}/{p.total} completed ({p.percentage:.0f}%), {p.running} running, "
             f"{p.pending} pending, {p.failed} failed"),
    )
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("job", "queue", "status", "step", "phases"):
        table.add_column(column)
    for job in sorted(jobs, key=lambda j: (j.parent_job_id is None, j.id)):
        table.add_row(
            str(job.data.get("document") or job.name),
            job.queue_name,
            Text(job.status.value, style=STYLE[job.status.value]),
            job.step,
            _phases(job),
        )
    parts: list[Table | Text] = [head, table]
    if note:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def _phases(job: Job) -> Text:
    text = Text()
    for phase in job.phases:
        pct = phase.progress.percentage or (100.0 if phase.status is PhaseStatus.COMPLETED
                                            else 0.0)
        filled = int(pct / 25)
        style = STYLE.get(phase.status.value, "dim")
        if phase.status is PhaseStatus.NOT_STARTED:
            style = "dim"
        text.append(f"{phase.name} ", style=style)
        text.append("█" * filled + "·" * (4 - filled) + " ", style=style)
    return text


async def _summary(db: Database, flow: Flow) -> None:
    from jobtrack.store import events as store_events

    async with db.read() as conn:
        history = await store_events.history(conn, flow.root_job_id)
        events = await store_events.read_after(conn, 0, flow_id=flow.id, limit=100_000)
    colour = STYLE[flow.status.value]
    console.print(f"\nflow [{colour}]{flow.status.value}[/{colour}]; result: {flow.result}")
    console.print(f"{len(events)} events recorded for this flow; the parent's history:")
    for event in history:
        console.print(f"  {event.at:%H:%M:%S.%f}  {event.from_status or '-':>9} -> "
                      f"{event.to_status:<9} step={event.step}  by {event.actor}")
    console.print("\nnext: [bold]jobtrack serve[/bold], then "
                  "[bold]jobtrack keys create --tenant default[/bold] and "
                  f"GET /flows/{flow.id} — or [bold]jobtrack flows show {flow.id}[/bold]")
