"""``jobtrack retention [--days N]``: delete old finished jobs and old events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from jobtrack.cli.common import console, open_database, run, settings_of

if TYPE_CHECKING:
    from jobtrack.queue.retention import RetentionReport


def register(app: typer.Typer) -> None:
    @app.command("retention")
    def retention(
        ctx: typer.Context,
        days: Annotated[float | None, typer.Option(
            min=0, help="delete finished jobs older than this many days (default: the "
                        "JOBTRACK_JOB_RETENTION_DAYS setting)")] = None,
        event_days: Annotated[float | None, typer.Option(
            min=0, help="delete events (not a live job's history) older than this many "
                        "days (default: JOBTRACK_EVENT_RETENTION_DAYS)")] = None,
        batch: Annotated[int, typer.Option(min=1, help="rows per transaction")] = 1000,
    ) -> None:
        """Delete finished jobs (with phases and events), finished flows, old rate-limit
        windows and old events, in batches."""
        settings = settings_of(ctx)
        job_days = days if days is not None else settings.job_retention_days
        if job_days is None:
            console.print("[red]error:[/red] say how old: --days N, or set "
                          "JOBTRACK_JOB_RETENTION_DAYS")
            raise typer.Exit(2)
        keep_events = event_days if event_days is not None else settings.event_retention_days

        async def go() -> RetentionReport:
            from rich.progress import Progress, SpinnerColumn, TextColumn

            from jobtrack.queue.retention import purge

            db = await open_database(settings.database_url, create=False)
            totals: dict[str, int] = {}
            try:
                with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                              console=console, transient=True) as bar:
                    task = bar.add_task("deleting...")

                    def progress(kind: str, n: int) -> None:
                        totals[kind] = totals.get(kind, 0) + n
                        bar.update(task, description="deleted " + ", ".join(
                            f"{v} {k}" for k, v in totals.items()))

                    return await purge(db, job_days=job_days, event_days=keep_events,
                                       batch=batch, on_progress=progress)
            finally:
                await db.dispose()

        report = run(go())
        console.print(f"deleted {report.jobs} job(s), {report.flows} flow(s), "
                      f"{report.events} event(s), {report.windows} rate-limit window(s)")
