"""The App the worker benchmark runs: one no-op task (``jobtrack worker noop_app:app``)."""

from typing import Any

import jobtrack

app = jobtrack.App()


@app.task(queue="bench")
async def noop(ctx: jobtrack.JobContext, **data: Any) -> None:
    """Does nothing: the benchmark measures the queue, not the work."""
