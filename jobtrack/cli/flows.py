"""``jobtrack flows``: look at flows from a terminal.

- ``jobtrack flows show FLOW_ID [--watch]``: the flow's status and progress bar on top,
  then its job tree (each job's status, step, queue, phases and progress); ``--watch``
  refreshes it live until the flow is completed, failed or cancelled.
- ``jobtrack flows ls [--flowname N] [--status S] [--tenant T]``: recent flows.

Both read the database directly (an operator's view: every tenant unless ``--tenant``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

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
from jobtrack.domain.status import (
    FLOW_TERMINAL,
    FlowStatus,
    JobStatus,
    PhaseStatus,
    normalize_status,
)
from jobtrack.errors import NotFound

if TYPE_CHECKING:
    from jobtrack.domain.flows import Flow
    from jobtrack.domain.records import Job, Phase

#: colour of each status (job, flow and phase statuses share their spellings)
STYLE = {
    JobStatus.PENDING.value: "yellow",
    JobStatus.RUNNING.value: "cyan",
    JobStatus.COMPLETED.value: "green",
    JobStatus.FAILED.value: "red",
    JobStatus.CANCELLED.value: "magenta",
    PhaseStatus.NOT_STARTED.value: "dim",
    PhaseStatus.PAUSED.value: "blue",
}


def _status(value: str) -> Text:
    return Text(value, style=STYLE.get(value, ""))


def _phase(phase: Phase) -> Text:
    text = Text(f"{phase.name} ")
    text.append_text(_status(phase.status.value))
    pct = phase.progress.percentage
    if pct is not None and phase.status is not PhaseStatus.NOT_STARTED:
        text.append(f" {pct:g}%")
    return text


def job_label(job: Job, *, tell_apart: bool = True) -> Text:
    """One line per job: name, status, step, queue, progress, phases; with
    ``tell_apart`` (in a tree of like jobs) also the end of its id and its data."""
    # the end of the id (its random part) and the data tell jobs of one task apart
    text = Text.assemble((job.name, "bold"),
                         (f" #{job.id[-8:]}" if tell_apart else "", "dim"), " ",
                         _status(job.status.value), (f" step={job.step}", "dim"),
                         (f" queue={job.queue_name}", "dim"))
    if job.progress is not None and job.progress.percentage is not None:
        text.append(f" {job.progress.percentage:g}%")
    if job.attempt > 1:
        text.append(f" attempt {job.attempt}/{job.max_attempts}", style="dim")
    if job.cancel_requested and not job.is_terminal:
        text.append(" cancel requested", style="magenta")
    preview = _data_preview(job.data) if tell_apart else ""
    if preview:
        text.append(f" {preview}", style="dim")
    if job.phases:
        text.append(" [")
        for i, phase in enumerate(job.phases):
            if i:
                text.append(", ")
            text.append_text(_phase(phase))
        text.append("]")
    if job.error and job.status is JobStatus.FAILED:
        text.append(f" error: {job.error.get('message', '')}", style="red")
    return text


#: console width below which tables take their narrow form (two lines per row, no tenant)
def narrow_table(*columns: str) -> Table:
    """A table for an 80-column terminal: no vertical rules, cells fold instead of being
    cut to ``s…``; the id column (first) never wraps."""
    table = Table(box=None, pad_edge=False, header_style="bold underline")
    table.add_column(columns[0], no_wrap=True)
    for column in columns[1:]:
        table.add_column(column, overflow="fold")
    return table


def stacked(first: str | Text, second: str | Text) -> Text:
    """A two-line cell: the value, and a dim detail under it."""
    text = first.copy() if isinstance(first, Text) else Text(first)
    if second:
        text.append("\n")
        text.append_text(second if isinstance(second, Text) else Text(second, style="dim"))
    return text


def when(value: datetime | None) -> str:
    """``HH:MM:SS`` today (UTC), else ``MM-DD HH:MM``."""
    if value is None:
        return ""
    if value.date() == datetime.now(UTC).date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%m-%d %H:%M")


def _data_preview(data: object, width: int = 32) -> str:
    """``key=value ...`` of a job's data, cut to ``width``: what tells like jobs apart."""
    if not isinstance(data, dict) or not data:
        return ""
    text = " ".join(f"{k}={v}" for k, v in data.items())
    return text if len(text) <= width else text[:width - 1] + "…"


def progress_bar(completed: int, total: int, width: int = 30) -> Text:
    """A bar that reads the same in a terminal, a pipe or a log file."""
    filled = round(width * completed / total) if total else 0
    return Text.assemble(("█" * filled, "green"), ("░" * (width - filled), "dim"))


def render_flow(flow: Flow, jobs: Sequence[Job]) -> RenderableType:
    """The flow's header (status, progress bar, counts) over its job tree."""
    from rich.tree import Tree

    p = flow.progress
    head = Table.grid(padding=(0, 1))
    head.add_row(Text.assemble(("flow ", "bold"), flow.id, " ", (flow.flowname, "bold"),
                               " ", _status(flow.status.value)))
    bar = Table.grid(padding=(0, 1))
    bar.add_row(progress_bar(p.completed, p.total),
                Text(f"{p.percentage:g}%  {p.completed}/{p.total} completed, {p.running} "
                     f"running, {p.pending} pending, {p.failed} failed, {p.cancelled} "
                     "cancelled"))
    head.add_row(bar)
    if flow.error:
        head.add_row(Text(f"error: {flow.error.get('message', flow.error)}", style="red"))
    if flow.result is not None:
        head.add_row(Text(f"result: {flow.result}", style="green"))
    nodes: dict[str, Tree] = {}
    root: Tree | None = None
    for job in jobs:
        parent = nodes.get(job.parent_job_id or "")
        node = parent.add(job_label(job)) if parent is not None else Tree(job_label(job))
        nodes[job.id] = node
        if root is None:
            root = node
    parts: list[RenderableType] = [head]
    if root is not None:
        parts.append(root)
    if len(jobs) < p.total:
        parts.append(Text(f"... {p.total - len(jobs)} more jobs not shown (--max-jobs)",
                          style="dim"))
    return Group(*parts)


async def load(url: str, flow_id: str, max_jobs: int) -> tuple[Flow, list[Job]]:
    from jobtrack.store import flows as store_flows

    db = await open_database(url, create=False)
    try:
        async with db.read() as conn:
            flow = await store_flows.get_flow(conn, flow_id, tenant=None)
            if flow is None:
                raise NotFound(f"flow {flow_id!r} not found")
            return flow, await store_flows.flow_job_list(conn, flow_id, limit=max_jobs)
    finally:
        await db.dispose()


async def watch(url: str, flow_id: str, max_jobs: int, interval: float) -> Flow:
    """Redraw the flow every ``interval`` seconds until it is finished."""
    import asyncio

    from rich.live import Live  # (only for this command: not a start-up cost of others)

    flow, jobs = await load(url, flow_id, max_jobs)
    with Live(render_flow(flow, jobs), console=out, auto_refresh=False) as live:
        while flow.status not in FLOW_TERMINAL or flow.progress.running:
            await asyncio.sleep(interval)
            flow, jobs = await load(url, flow_id, max_jobs)
            live.update(render_flow(flow, jobs), refresh=True)
    return flow


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Flows: trees of jobs with one status and exact progress.",
                        no_args_is_help=True)
    app.add_typer(group, name="flows")

    @group.command("show")
    def show(
        ctx: typer.Context,
        flow_id: Annotated[str, typer.Argument(help="the flow's id")],
        watch_: Annotated[bool, typer.Option("--watch", "-w",
                                             help="refresh live until it finishes")] = False,
        interval: Annotated[float, typer.Option(min=0.05, help="seconds between refreshes")]
        = 1.0,
        max_jobs: Annotated[int, typer.Option(min=1, help="jobs shown in the tree")] = 200,
    ) -> None:
        """A flow's status and progress, and its job tree."""
        url = url_of(ctx)
        if watch_:
            run(watch(url, flow_id, max_jobs, interval))
        else:
            out.print(render_flow(*run(load(url, flow_id, max_jobs))))

    @group.command("ls")
    def list_flows(
        ctx: typer.Context,
        flowname: Annotated[str | None, typer.Option(help="only flows of this name")] = None,
        status: Annotated[str | None, typer.Option(help="only flows in this status")] = None,
        tenant: Annotated[str | None, typer.Option(help="only this tenant's flows")] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    ) -> None:
        """Recent flows, newest first."""
        from jobtrack.store.flows import list_flows as store_list_flows

        with clear_errors():
            wanted = None if status is None else FlowStatus(normalize_status(status).value)
        flows, _ = read(url_of(ctx), lambda conn: store_list_flows(
            conn, tenant=tenant, limit=limit, flowname=flowname, status=wanted))
        if not flows:
            console.print("no flows")
            return
        if narrow_layout():
            narrow = narrow_table("flow id", "flowname", "status", "created")
            for f in flows:
                p = f.progress
                narrow.add_row(f.id, stacked(f.flowname, f.tenant),
                               stacked(_status(f.status.value),
                                       f"{p.completed}/{p.total} {p.percentage:g}%"),
                               when(f.created_at))
            out.print(narrow)
            return
        table = Table("flowname", "tenant", "status", "progress", "created")
        table.add_column("flow id", no_wrap=True)
        for f in flows:
            p = f.progress
            table.add_row(f.flowname, f.tenant, _status(f.status.value),
                          f"{p.completed}/{p.total} ({p.percentage:g}%)",
                          f.created_at.strftime("%Y-%m-%d %H:%M:%S"), f.id)
        print_table(table)
