"""The jobtrack side of seed 003's flow across queues: the two jobs a real
``jobtrack worker`` runs. ``extract_text`` is a child on queue ``ingest``;
``publish_document`` is the flow's parent on queue ``publish``, started only once every
child (this one and the ``embed`` child that another system runs) has completed.

Run a worker for them from the repository root::

    jobtrack worker examples.flows_across_queues.tasks:app --queues ingest,publish

``FLOW_STEP_SECONDS`` (default 0.05) is the simulated work per page.
"""

import asyncio
import os
from typing import Any

from jobtrack import App, JobContext

INGEST_QUEUE = "ingest"
PUBLISH_QUEUE = "publish"
EXTRACT_TASK = "extract_text"
PUBLISH_TASK = "publish_document"
CHARS_PER_PAGE = 1800

app = App()  # the database comes from JOBTRACK_DATABASE_URL (or --database-url)


def _step() -> float:
    return float(os.environ.get("FLOW_STEP_SECONDS", "0.05"))


@app.task(name=EXTRACT_TASK, queue=INGEST_QUEUE, max_attempts=1)
async def extract_text(ctx: JobContext, document: str, pages: int,
                       flowId: str) -> dict[str, Any]:
    """Extract the text of each page, reporting progress page by page. ``flowId`` is the
    flow's id, which jobtrack puts into the data of every job of a flow (the seed's
    flowId injection)."""
    for page in range(1, pages + 1):
        await asyncio.sleep(_step())
        await ctx.progress(page, pages)
    return {"document": document, "pages": pages, "chars": pages * CHARS_PER_PAGE,
            "flowId": flowId}


@app.task(name=PUBLISH_TASK, queue=PUBLISH_QUEUE, max_attempts=1)
async def publish_document(ctx: JobContext, document: str) -> dict[str, Any]:
    """The parent: runs after both children completed; its result is the flow's."""
    await asyncio.sleep(_step())
    return {"document": document, "published": True}
