"""``jobtrack jobs``: enqueue, look at and act on jobs from a terminal.

- ``jobtrack jobs enqueue NAME [--queue Q] [--data JSON] [--delay S] [--priority P]
  [--wait]``: the new job's id alone on stdout; with ``--wait``, its end state on stderr
  and exit 0 when it completed, 1 otherwise.
- ``jobtrack jobs ls [--queue Q] [--status S] [--name N] [--flow F] [--tenant T]``: recent
  jobs, newest first.
- ``jobtrack jobs show JOB_ID``: the job's status, step, progress, phases (with bars),
  error, result, stats and its history of transitions.
- ``jobtrack jobs watch JOB_ID``: the same, redrawn live until the job is finished; exits
  0 when it completed, 1 when it failed or was cancelled (scripts can wait on it).
- ``jobtrack jobs cancel JOB_ID`` / ``jobtrack jobs retry JOB_ID``: what
  ``POST /jobs/{id}/cancel`` and ``/retry`` do, recorded as done by ``cli``.

``ls`` and ``show`` take ``--json``: the job(s) in the API's wire form, alone on stdout.
They read the database directly (an operator's view: every tenant unless ``--tenant``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobtrack.cli import enqueue
from jobtrack.cli.common import (
    clear_errors,
    console,
    narrow_layout,
    open_database,
    out,
    print_table,
    read,
    run,
    url_of,
)
from jobtrack.cli.flows import (
    STYLE,
    job_label,
    narrow_table,
    progress_bar,
    stacked,
    when,
)
from jobtrack.domain.status import JobStatus, PhaseStatus, normalize_status

if TYPE_CHECKING:
    from jobtrack.domain.records import Change, Job
    from jobtrack.store.events import StoredEvent

#: who the event log records as the author of a change made here
ACTOR = "cli"


def _status(value: str) -> Text:
    return Text(value, style=STYLE.get(value, ""))


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _bar(done: float, total: float | None, pct: float | None) -> Text:
    if total is None or pct is None:
        return Text(f"{done:g} done" if done else "")
    bar = progress_bar(round(pct), 100, width=20)
    bar.append(f" {pct:g}%  {done:g}/{total:g}")
    return bar


def _progress(job: Job) -> str:
    """The job's progress (a phased job's from its phases) and its current phase's
    (``12.5% (load 50%)``)."""
    shown = []
    if job.progress is not None and job.progress.percentage is not None:
        shown.append(f"{job.progress.percentage:g}%")
    phase = job.current_phase
    if phase is not None and phase.progress.percentage is not None:
        current = f"{phase.name} {phase.progress.percentage:g}%"
        shown.append(f"({current})" if shown else current)
    return " ".join(shown)


def render_job(job: Job, history: Sequence[StoredEvent] = ()) -> RenderableType:
    """A job in full: the label line, its fields, phases with bars, outcome, history."""
    parts: list[RenderableType] = [Text.assemble(("job ", "bold"), job.id, " ",
                                                 job_label(job, tell_apart=False))]
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="dim")
    fields.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("tenant", job.tenant),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("priority", str(job.priority)),
        ("created", _when(job.created_at)),
        ("updated", _when(job.updated_at)),
    ]
    if job.run_at is not None and job.status is JobStatus.PENDING:
        rows.append(("runs at", _when(job.run_at)))
    if job.started_at is not None:
        rows.append(("started", _when(job.started_at)))
    if job.completed_at is not None:
        rows.append(("finished", _when(job.completed_at)))
    if job.flow_id is not None:
        rows.append(("flow", job.flow_id))
    if job.parent_job_id is not None:
        rows.append(("parent", job.parent_job_id))
    if job.worker_id is not None and job.status is JobStatus.RUNNING:
        rows.append(("worker", job.worker_id))
    if job.progress is not None:
        rows.append(("progress", _bar(job.progress.done, job.progress.total,
                                      job.progress.percentage)))
    for name, value in rows:
        fields.add_row(name, value)
    parts.append(fields)
    if job.phases:
        phases = Table("phase", "status", "progress", "started", "finished",
                       title="phases", title_justify="left", box=None, pad_edge=False)
        for p in job.phases:
            shown = p.status is not PhaseStatus.NOT_STARTED
            phases.add_row(p.name, _status(p.status.value),
                           _bar(p.done, p.total, p.progress.percentage) if shown else "",
                           _when(p.started_at), _when(p.completed_at))
        parts.append(phases)
    outcome: tuple[tuple[str, Any, str], ...] = (
        ("error", job.error, "red"), ("result", job.result, "green"),
        ("stats", job.stats, ""), ("data", job.data, "dim"))
    for label, content, style in outcome:
        if content is not None and content != {}:
            parts.append(Text(f"{label}: {_json(content)}", style=style))
    if history:
        parts.append(render_history(history))
    return Group(*parts)


def render_history(history: Sequence[StoredEvent]) -> Table:
    """A job's transitions, oldest first."""
    table = Table("at", "from", "to", "step", "attempt", "by", title="history",
                  title_justify="left", box=None, pad_edge=False)
    for e in history:
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], e.from_status or "-",
                      _status(e.to_status or ""), e.step or "", str(e.attempt or ""),
                      e.actor or "")
    return table


async def load(url: str, job_id: str, *, with_history: bool
               ) -> tuple[Job, list[StoredEvent]]:
    from jobtrack.store import events as store_events
    from jobtrack.store.jobs import get_job
    from jobtrack.store.jobs import not_found as job_not_found

    db = await open_database(url, create=False)
    try:
        async with db.read() as conn:
            job = await get_job(conn, job_id, tenant=None)
            if job is None:
                raise job_not_found(job_id)
            history = await store_events.history(conn, job.id) if with_history else []
            return job, history
    finally:
        await db.dispose()


async def watch(url: str, job_id: str, interval: float) -> Job:
    """Redraw the job every ``interval`` seconds until it is finished."""
    import asyncio

    from rich.live import Live  # (only for this command: not a start-up cost of others)

    job, _ = await load(url, job_id, with_history=False)
    with Live(render_job(job), console=out, auto_refresh=False) as live:
        while not job.is_terminal:
            await asyncio.sleep(interval)
            job, _ = await load(url, job_id, with_history=False)
            live.update(render_job(job), refresh=True)
    job, history = await load(url, job_id, with_history=True)
    out.print()
    out.print(render_history(history))
    return job


async def act(url: str, job_id: str, plan: Callable[[Job, datetime], Change]) -> Job:
    """One action on one job, planned against the locked, stored job."""
    from jobtrack.store.jobs import change_job

    now = datetime.now(UTC)
    db = await open_database(url, create=True)
    try:
        async with db.write() as conn:
            return await change_job(conn, job_id, lambda job: plan(job, now), tenant=None,
                                    actor=ACTOR, now=now)
    finally:
        await db.dispose()


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Jobs: enqueue, list, show, watch, cancel and retry.",
                        no_args_is_help=True)
    app.add_typer(group, name="jobs")

    enqueue.register(group)

    @group.command("ls")
    def list_command(
        ctx: typer.Context,
        queue: Annotated[str | None, typer.Option(help="only jobs of this queue")] = None,
        status: Annotated[str | None, typer.Option(help="only jobs in this status")] = None,
        name: Annotated[str | None, typer.Option(help="only jobs of this task name")] = None,
        flow: Annotated[str | None, typer.Option(help="only jobs of this flow id")] = None,
        tenant: Annotated[str | None, typer.Option(help="only this tenant's jobs")] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="the jobs as JSON on stdout "
                                                              "(the API's wire form)")] = False,
    ) -> None:
        """Recent jobs, newest first."""
        from jobtrack.store.jobs import JobFilter, list_jobs

        with clear_errors():
            wanted = None if status is None else normalize_status(status)
        flt = JobFilter(tenant=tenant, status=wanted, queue_name=queue, flow_id=flow, name=name)
        found, _ = read(url_of(ctx), lambda conn: list_jobs(conn, flt, limit=limit))
        if as_json:
            from jobtrack.domain.wire import job_to_wire

            out.print_json(orjson.dumps([job_to_wire(j) for j in found]).decode())
            return
        if not found:
            console.print("no jobs")
            return
        if narrow_layout():
            narrow = narrow_table("job id", "name / queue", "status / step", "updated")
            for j in found:
                step = " ".join(filter(None, (j.step, _progress(j))))
                if j.attempt > 1:
                    step += f" attempt {j.attempt}/{j.max_attempts}"
                narrow.add_row(j.id, stacked(j.name, j.queue_name),
                               stacked(_status(j.status.value), step), when(j.updated_at))
            out.print(narrow)
            return
        table = Table("queue", "name", "status", "step", "progress", "attempt", "tenant",
                      "updated")
        table.add_column("job id", no_wrap=True)
        for j in found:
            table.add_row(j.queue_name, j.name, _status(j.status.value), j.step,
                          _progress(j), f"{j.attempt}/{j.max_attempts}", j.tenant,
                          _when(j.updated_at), j.id)
        print_table(table)

    @group.command("show")
    def show_command(
        ctx: typer.Context,
        job_id: Annotated[str, typer.Argument(help="the job's id")],
        as_json: Annotated[bool, typer.Option("--json", help="the job as JSON on stdout "
                                                              "(the API's wire form)")] = False,
    ) -> None:
        """A job: status, step, progress, phases, error, result, stats and history."""
        url = url_of(ctx)
        job, history = run(load(url, job_id, with_history=not as_json))
        if as_json:
            from jobtrack.domain.wire import job_to_wire

            out.print_json(orjson.dumps(job_to_wire(job)).decode())
        else:
            out.print(render_job(job, history))

    @group.command("watch")
    def watch_command(
        ctx: typer.Context,
        job_id: Annotated[str, typer.Argument(help="the job's id")],
        interval: Annotated[float, typer.Option(min=0.05, help="seconds between refreshes")]
        = 0.5,
    ) -> None:
        """Follow a job live until it finishes (exit 0: completed; 1: failed/cancelled)."""
        job = run(watch(url_of(ctx), job_id, interval))
        raise typer.Exit(0 if job.status is JobStatus.COMPLETED else 1)

    @group.command("cancel")
    def cancel_command(
        ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="the job's id")]
    ) -> None:
        """Cancel a job: a pending one now, a running one at its worker's next checkpoint."""
        from jobtrack.domain.planner import plan_cancel

        job = run(act(url_of(ctx), job_id, plan_cancel))
        if job.status is JobStatus.CANCELLED:
            console.print(f"job {job.id} cancelled")
        else:
            console.print(f"job {job.id} is {job.status.value}: cancel requested; its "
                          "worker stops at its next checkpoint")

    @group.command("retry")
    def retry_command(
        ctx: typer.Context, job_id: Annotated[str, typer.Argument(help="the job's id")]
    ) -> None:
        """Run a failed or cancelled job again, as a new attempt."""
        from jobtrack.domain.planner import plan_retry

        job = run(act(url_of(ctx), job_id, plan_retry))
        console.print(f"job {job.id} is {job.status.value} again (attempt {job.attempt} of "
                      f"{job.max_attempts})")
