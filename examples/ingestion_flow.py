"""An ingestion flow from Python: extract pages on one queue, embed on another, then
assemble; a real worker runs it children first while the summary shows exact progress.

    .venv/bin/python examples/ingestion_flow.py            # SQLite file ./ingestion.db
    JOBTRACK_DATABASE_URL=postgresql://postgres@127.0.0.1/jobtrack \\
        .venv/bin/python examples/ingestion_flow.py

Then ``jobtrack --database-url ... flows show FLOW_ID`` draws the tree.
"""

import asyncio
import os
from typing import Any

from rich.console import Console

from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.flows import FlowJob, get_flow, wait_flow
from jobtrack.queue.worker import Worker
from jobtrack.store import migrate


def build_app(url: str) -> App:
    app = App(url, tenant="example")

    @app.task(queue="extract")
    async def extract_page(ctx: JobContext, page: int) -> dict[str, int]:
        await asyncio.sleep(0.05)
        return {"page": page, "chars": 1000 + page}

    @app.task(queue="embed", phases=["chunk", "embed"])
    async def embed(ctx: JobContext, document: str) -> dict[str, int]:
        async with ctx.phase("chunk", total=4) as chunk:
            for _ in range(4):
                await asyncio.sleep(0.02)
                await chunk.advance()
        async with ctx.phase("embed"):
            await asyncio.sleep(0.05)
        return {"vectors": 42}

    @app.task(queue="assemble")
    async def assemble(ctx: JobContext, document: str) -> dict[str, Any]:
        return {"document": document, "ok": True}

    return app


async def main() -> None:
    console = Console(highlight=False)
    url = os.environ.get("JOBTRACK_DATABASE_URL", "sqlite:///./ingestion.db")
    migrate.upgrade(url)
    app = build_app(url)
    async with app:
        flow = await app.enqueue_flow("ingest-pdf", FlowJob(
            "assemble", document="report.pdf",
            children=[*(FlowJob("extract_page", page=p) for p in range(1, 6)),
                      FlowJob("embed", document="report.pdf")]))
        console.print(f"flow {flow.id}: {flow.progress.total} jobs")
        worker = Worker(app, concurrency=4)
        running = asyncio.create_task(worker.run())
        try:
            while (current := await get_flow(app, flow.id)) and current.status.value in (
                    "pending", "running"):
                p = current.progress
                console.print(f"  {current.status.value:<9} {p.percentage:6.2f}%  "
                      f"{p.completed}/{p.total} completed, {p.running} running")
                await asyncio.sleep(0.1)
            done = await wait_flow(app, flow.id, timeout=60)
        finally:
            worker.stop()
            await running
        console.print(f"flow {done.status.value}: {done.result}")


if __name__ == "__main__":
    asyncio.run(main())
