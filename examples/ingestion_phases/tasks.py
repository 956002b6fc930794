"""Document ingestion in four phases (seeds 001/002): loading, chunking, embedding and
indexing, each with its own status and progress; the job's status is derived from them.

Run a worker for it from the repository root::

    jobtrack worker examples.ingestion_phases.tasks:app --queues ingest

``INGEST_STEP_SECONDS`` (default 0.1) is the simulated work per unit.
"""

import asyncio
import os
from typing import Any

from jobtrack import App, JobContext

QUEUE = "ingest"
TASK = "ingest_document"
#: the phases, in order; declared on the task so every job of it carries them
PHASES = ["loading", "chunking", "embedding", "indexing"]
CHUNKS_PER_PAGE = 4

app = App()  # the database comes from JOBTRACK_DATABASE_URL (or --database-url)


def _step() -> float:
    return float(os.environ.get("INGEST_STEP_SECONDS", "0.1"))


@app.task(name=TASK, queue=QUEUE, phases=PHASES)
async def ingest_document(ctx: JobContext, document: str, pages: int) -> dict[str, Any]:
    """Load a document's pages, cut them into chunks, embed and index the chunks.

    Every ``advance()`` records progress and is a checkpoint: a paused phase waits there,
    a cancelled job stops there.
    """
    step = _step()
    chunks = pages * CHUNKS_PER_PAGE
    async with ctx.phase("loading", total=pages) as phase:
        if pages < 1:  # fails the loading phase, and so the job
            raise ValueError(f"{document} has no pages to load")
        for _ in range(pages):
            await asyncio.sleep(step)
            await phase.advance()
    async with ctx.phase("chunking", total=pages) as phase:
        for _ in range(pages):
            await asyncio.sleep(step / 2)
            await phase.advance()
    async with ctx.phase("embedding", total=chunks) as phase:
        for _ in range(chunks):
            await asyncio.sleep(step)
            await phase.advance()
    async with ctx.phase("indexing", total=chunks) as phase:
        for _ in range(chunks):
            await asyncio.sleep(step / 4)
            await phase.advance()
    ctx.stats["chunks"] = chunks
    return {"document": document, "pages": pages, "chunks": chunks}
