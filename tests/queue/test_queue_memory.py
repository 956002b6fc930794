"""A worker's memory stays flat (docs/targets.md P8): nothing is kept per job once it is
written, and running a job leaves no reference cycle behind, since ``jobtrack worker``
collects the young generation only every 50,000 new objects (cli/worker.py ``_tune_gc``):
a few cyclic objects per job would pile up to that many between collections.

The cycle that was there: building ``column.in_([...])`` per claim or flush makes
SQLAlchemy clone a bind parameter into a reference cycle (ten objects each); the store
now builds those statements once and binds the values at execution."""

import asyncio
import gc
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.worker import Worker
from jobtrack.store.claim import _claim_statement

Running = Callable[..., AbstractAsyncContextManager[Worker]]
WARM, MEASURED = 100, 300


async def _until(worker: Worker, completed: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while worker.stats.completed < completed:
        assert time.monotonic() < deadline, f"{worker.stats} after {timeout} s"
        await asyncio.sleep(0.01)


def _unreachable() -> list[Any]:
    """Every object only the cyclic GC would free now (gc.garbage keeps them to look at)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


async def test_running_jobs_leaves_no_reference_cycles(app: App, running: Running) -> None:
    @app.task
    async def noop(ctx: JobContext, **data: Any) -> None:
        return None

    await app.enqueue_many("noop", ({"i": i} for i in range(WARM + MEASURED)))
    async with running(app, concurrency=10) as worker:
        await _until(worker, WARM)  # warm-up: caches, pool connections, prepared plans
        gc.collect()
        gc.disable()
        try:
            await _until(worker, WARM + MEASURED)
            garbage = _unreachable()
        finally:
            gc.enable()
        # before the fix: 10 objects per claim statement (1 per job on PostgreSQL, 2 on
        # SQLite at concurrency 10); a stray timer or exception may still make a few
        kinds: dict[str, int] = {}
        for obj in garbage:
            kinds[type(obj).__qualname__] = kinds.get(type(obj).__qualname__, 0) + 1
        assert len(garbage) < MEASURED // 10, sorted(kinds.items(), key=lambda kv: -kv[1])
        assert kinds.get("BindParameter", 0) == 0, kinds


async def test_nothing_is_kept_per_job_after_draining(app: App, running: Running) -> None:
    @app.task
    async def noop(ctx: JobContext, **data: Any) -> None:
        return None

    await app.enqueue_many("noop", ({"i": i} for i in range(200)))
    async with running(app, concurrency=50) as worker:
        await _until(worker, 200)
        deadline = time.monotonic() + 10
        while worker._held and time.monotonic() < deadline:  # the last flush's bookkeeping
            await asyncio.sleep(0.01)
        assert not worker._held and not worker._running and not worker._outcomes


def test_claim_statements_are_built_once_and_bounded() -> None:
    first = _claim_statement("q", ("noop",), None)
    assert _claim_statement("q", ("noop",), None) is first
    assert _claim_statement.cache_info().maxsize is not None
