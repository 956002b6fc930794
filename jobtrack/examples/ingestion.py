"""An ingestion pipeline, the demo's workload: documents are loaded, chunked, embedded
and indexed in phases on two queues, then a parent job publishes the collection once
every document is in.

Run its workers with ``jobtrack worker jobtrack.examples.ingestion:app``.
"""

import asyncio
import os
import random
from typing import Any

from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.flows import FlowJob

PHASES = ["loading", "chunking", "embedding", "indexing"]
#: seconds per unit of simulated work; the demo's --fast sets it lower
STEP = float(os.environ.get("JOBTRACK_DEMO_STEP", "0.2"))

app = App()


@app.task(queue="ingest", phases=PHASES, max_attempts=2)
async def ingest_document(ctx: JobContext, document: str, pages: int, **_: Any) -> dict[str, Any]:
    """Load a document's pages, cut them into chunks, embed and index the chunks."""
    rng = random.Random(document)
    chunks = 0
    async with ctx.phase("loading", total=pages) as phase:
        for _page in range(pages):
            await asyncio.sleep(STEP * rng.uniform(0.5, 1.0))
            await phase.advance()
    async with ctx.phase("chunking", total=pages) as phase:
        for _page in range(pages):
            chunks += rng.randint(2, 4)
            await asyncio.sleep(STEP * 0.5)
            await phase.advance()
    async with ctx.phase("embedding", total=chunks) as phase:
        for _chunk in range(chunks):
            await asyncio.sleep(STEP * 0.3)
            await phase.advance()
    async with ctx.phase("indexing", total=chunks) as phase:
        for _chunk in range(chunks):
            await asyncio.sleep(STEP * 0.15)
            await phase.advance()
    return {"document": document, "pages": pages, "chunks": chunks}


@app.task(queue="publish")
async def publish_collection(ctx: JobContext, collection: str, **_: Any) -> dict[str, Any]:
    """Runs only after every document of the flow completed."""
    await asyncio.sleep(STEP * 2)
    return {"collection": collection, "published": True}


def collection_flow(collection: str, documents: int) -> FlowJob:
    """The demo's flow: one publish job waiting for ``documents`` ingestion jobs, large
    documents on their own queue."""
    children = []
    for i in range(documents):
        pages = 3 + (i * 5) % 9
        queue = "ingest-large" if pages >= 8 else "ingest"
        children.append(FlowJob("ingest_document", document=f"doc-{i + 1}.pdf", pages=pages,
                                _queue=queue))
    return FlowJob("publish_collection", collection=collection, children=children)
