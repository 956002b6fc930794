"""``jobtrack jobs enqueue NAME [--queue Q] [--data JSON] [--delay S] [--priority P]
[--wait]``: enqueue a job from a shell; its id alone on stdout (``ID=$(jobtrack jobs
enqueue ...)``). With ``--wait`` the job's end state follows on stderr and the exit code
says how it ended: 0 completed, 1 failed or cancelled.
"""

from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from jobtrack.cli.common import console, out, run, settings_of
from jobtrack.domain.status import JobStatus

if TYPE_CHECKING:
    from jobtrack.domain.records import Job


def _arguments(data: str) -> dict[str, Any]:
    """``--data``: a JSON object, or exit 2 saying what is wrong."""
    try:
        arguments = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        console.print(f"error: --data is not JSON: {exc}", soft_wrap=True, markup=False)
        raise typer.Exit(2) from None
    if not isinstance(arguments, dict):
        console.print("error: --data must be a JSON object of the task's arguments",
                      soft_wrap=True, markup=False)
        raise typer.Exit(2)
    return arguments


def register(group: typer.Typer) -> None:
    @group.command("enqueue")
    def enqueue_command(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="the task's name")],
        queue: Annotated[str, typer.Option(help="the queue its workers take it from")]
        = "default",
        data: Annotated[str, typer.Option(help="the task's arguments, a JSON object")] = "{}",
        delay: Annotated[float | None, typer.Option(
            min=0, help="seconds before it may run")] = None,
        priority: Annotated[int, typer.Option(help="higher runs first")] = 0,
        phases: Annotated[str | None, typer.Option(
            help="comma-separated phases, as the task declares them (a task that reports "
                 "phases needs them)")] = None,
        max_attempts: Annotated[int | None, typer.Option(
            min=1, help="runs before it stays failed (default: no retry)")] = None,
        tenant: Annotated[str, typer.Option(help="the tenant it belongs to")] = "default",
        wait: Annotated[bool, typer.Option(
            "--wait", help="wait until it finishes: exit 0 if it completed, 1 if not")]
        = False,
    ) -> None:
        """Enqueue a job; print its id alone on stdout."""
        arguments = _arguments(data)
        settings = settings_of(ctx)

        async def go() -> "Job":
            from jobtrack.queue.app import App

            async with App(settings=settings, tenant=tenant) as jobs:
                [job] = await jobs.enqueue_many(
                    name, [arguments], queue=queue, priority=priority, delay=delay,
                    max_attempts=max_attempts,
                    phases=[p.strip() for p in phases.split(",") if p.strip()]
                    if phases else None)
                out.print(job.id, soft_wrap=True, highlight=False)
                out.file.flush()
                return await jobs.wait(job.id) if wait else job

        job = run(go())
        if wait:
            from jobtrack.cli.jobs import render_job

            console.print(render_job(job))
            raise typer.Exit(0 if job.status is JobStatus.COMPLETED else 1)
