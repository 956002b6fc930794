"""``jobtrack workers ls`` and ``jobtrack tasks ls``: the task registry from a terminal.

- ``jobtrack workers ls``: the workers that recorded themselves (id, host, pid, queues,
  concurrency, running jobs, started, last heartbeat); one silent for 3 lease periods is
  shown ``stale``.
- ``jobtrack tasks ls``: the task declarations workers recorded (name, queue, phases,
  attempts, retry, timeout, parameters), which enqueueing resolves jobs against.

Both take ``--json``: the list in the wire form of ``GET /workers`` / ``GET /tasks``,
alone on stdout. They read the database directly (an operator's view).
"""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from jobtrack.cli.common import out, print_table, read, settings_of, url_of

if TYPE_CHECKING:  # loaded only by the commands that run (start-up time)
    from jobtrack.domain.registry import TaskRecord, WorkerInfo

JsonOption = Annotated[bool, typer.Option("--json", help="the list as JSON on stdout")]


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def load_workers(url: str, lease_seconds: float) -> "list[WorkerInfo]":
    from jobtrack.domain.registry import STALE_LEASES
    from jobtrack.store.registry import list_workers

    stale_after = timedelta(seconds=lease_seconds * STALE_LEASES)
    return read(url, lambda conn: list_workers(conn, now=datetime.now(UTC),
                                               stale_after=stale_after))


def load_tasks(url: str) -> "list[TaskRecord]":
    from jobtrack.store.registry import list_tasks

    return read(url, list_tasks)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:g} s"


def register(app: typer.Typer) -> None:
    workers = typer.Typer(help="Workers that recorded themselves in the database.",
                          no_args_is_help=True)
    tasks = typer.Typer(help="Task declarations the workers recorded.", no_args_is_help=True)
    app.add_typer(workers, name="workers")
    app.add_typer(tasks, name="tasks")

    @workers.command("ls")
    def list_workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Recorded workers, oldest first; stale ones (no heartbeat) marked."""
        from rich.table import Table
        from rich.text import Text

        from jobtrack.domain.registry import worker_to_wire

        found = load_workers(url_of(ctx), settings_of(ctx).lease_seconds)
        if as_json:
            out.print_json(orjson.dumps([worker_to_wire(w) for w in found]).decode())
            return
        table = Table("id", "host", "pid", "queues", "concurrency", "running", "started",
                      "heartbeat", "state", title=f"{len(found)} worker(s)")
        for w in found:
            state = Text("stale", style="yellow") if w.stale else Text("alive", style="green")
            table.add_row(w.id, w.host, str(w.pid), ",".join(w.queues), str(w.concurrency),
                          str(w.running), _when(w.started_at), _when(w.heartbeat_at), state)
        print_table(table)

    @tasks.command("ls")
    def list_tasks(ctx: typer.Context, as_json: JsonOption = False) -> None:
        """Recorded task declarations, by name then queue."""
        from rich.table import Table

        from jobtrack.domain.registry import task_to_wire

        found = load_tasks(url_of(ctx))
        if as_json:
            out.print_json(orjson.dumps([task_to_wire(t) for t in found]).decode())
            return
        table = Table("name", "queue", "phases", "attempts", "retry", "timeout",
                      "parameters", "updated", "by", title=f"{len(found)} task(s)")
        for t in found:
            d = t.declaration
            params = [p if p in d.required else f"{p}?" for p in d.parameters]
            if d.accepts_any:
                params.append("**")
            retry = d.retry
            backoff = (f"{retry.get('base', 0):g}s x{retry.get('factor', 0):g} "
                       f"<= {retry.get('cap', 0):g}s") if retry else ""
            table.add_row(d.name, d.queue, ", ".join(d.phases),
                          "" if d.max_attempts is None else str(d.max_attempts), backoff,
                          _seconds(d.timeout), ", ".join(params), _when(t.updated_at),
                          t.worker_id or "")
        print_table(table)
