"""A task's failure reaches the worker's log with its traceback, and the job's stored
error keeps the traceback (bounded) next to its message and type."""

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext, SyncJobContext
from jobtrack.queue.execution import TRACEBACK_LIMIT, error_of
from jobtrack.queue.worker import Worker

Running = Callable[..., AbstractAsyncContextManager[Worker]]


async def test_a_failing_task_is_logged_and_its_error_keeps_the_traceback(
    app: App, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    async def breaks(ctx: JobContext, n: int) -> Any:
        return _helper_that_raises(n)

    @app.task
    def breaks_plainly(ctx: SyncJobContext) -> None:
        raise RuntimeError("plain task broke")

    first = await app.enqueue("breaks", n=3)
    second = await app.enqueue("breaks_plainly")
    with caplog.at_level(logging.ERROR, logger="jobtrack.worker"):
        async with running(app):
            done = await app.wait(first.id, timeout=10)
            plain = await app.wait(second.id, timeout=10)
    assert done.status is JobStatus.FAILED and plain.status is JobStatus.FAILED
    assert done.error is not None and done.error["type"] == "TypeError"
    trace = done.error["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "_helper_that_raises" in trace and "TypeError: bad n: 3" in trace
    assert plain.error is not None
    assert "RuntimeError: plain task broke" in plain.error["traceback"]
    records = [r for r in caplog.records if r.name == "jobtrack.worker"
               and r.levelno == logging.ERROR]
    logged = {r.getMessage().splitlines()[0]: r for r in records}
    header = f"job {first.id} (breaks) failed on attempt 1 of 1: TypeError: bad n: 3"
    assert header in logged, list(logged)
    assert logged[header].exc_info is not None, "the traceback goes with the log line"
    assert any(m.startswith(f"job {second.id} (breaks_plainly) failed") for m in logged)


def _helper_that_raises(n: int) -> None:
    raise TypeError(f"bad n: {n}")


def test_a_long_traceback_keeps_its_end() -> None:
    def chain(n: int) -> None:  # n exceptions, each raised while handling the one before
        try:
            if n == 0:
                raise KeyError("first")
            chain(n - 1)
        except Exception as exc:
            raise ValueError(f"at level {n}") from exc

    try:
        chain(200)
    except ValueError as exc:
        error = error_of(exc)
    trace = error["traceback"]
    assert len(trace.encode()) <= TRACEBACK_LIMIT
    assert trace.endswith("ValueError: at level 200\n")
    assert trace.startswith("...\n") and "KeyError" not in trace
