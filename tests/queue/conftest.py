"""Fixtures of the queue tests: an App on the test database, and a way to run workers."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from jobtrack.queue.app import App
from jobtrack.queue.worker import Worker
from jobtrack.settings import Settings

Running = Callable[..., AbstractAsyncContextManager[Worker]]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    """An App on the test database (lease 5 s, reaper every 0.2 s, progress unthrottled)."""
    the_app = App(settings=settings)
    yield the_app
    await the_app.close()


@pytest.fixture
def running() -> Running:
    """``async with running(app, concurrency=2) as worker:`` runs a worker in the
    background and stops it (gracefully) on the way out."""

    @asynccontextmanager
    async def run(app: App, **options: Any) -> AsyncIterator[Worker]:
        options.setdefault("grace_seconds", 5.0)
        worker = Worker(app, **options)
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    return run
