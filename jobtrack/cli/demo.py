"""``jobtrack demo``: a real flow on the embedded database, with live progress.

Only the command is declared here; what it runs (:mod:`jobtrack.cli.demo_run`: the live
display, the worker processes, the pause and resume) is imported when it runs, so that no
other command pays for loading it.
"""

from typing import Annotated

import typer

from jobtrack.cli.common import settings_of


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        ctx: typer.Context,
        documents: Annotated[int, typer.Option(min=1, max=50, help="documents to ingest")] = 6,
        fast: Annotated[bool, typer.Option("--fast", help="shorter simulated work")] = False,
        pause: Annotated[bool, typer.Option(help="pause and resume one phase")] = True,
        timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 180,
    ) -> None:
        """Run an ingestion flow across two queues with real workers and live progress."""
        from jobtrack.cli.demo_run import run_demo

        ok = run_demo(settings_of(ctx), documents, fast, pause, timeout)
        raise typer.Exit(0 if ok else 1)
