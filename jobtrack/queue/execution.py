"""Run one job's task and say how it ended, as an :class:`Outcome` (or None when the
worker no longer owns the job and must not report anything)."""

import asyncio
import functools
import logging
import time
import traceback
from concurrent.futures import Executor
from typing import Any

import orjson

from jobtrack.domain.retry import policy_of
from jobtrack.domain.status import JobStatus, StopReason
from jobtrack.queue.context import JobCancelled, JobContext, LeaseLost, SyncJobContext
from jobtrack.queue.outcomes import Outcome
from jobtrack.queue.tasks import Task

log = logging.getLogger("jobtrack.worker")

#: most bytes of a traceback stored in a job's error (its end: where it was raised)
TRACEBACK_LIMIT = 8192


def error_of(exc: BaseException) -> dict[str, Any]:
    """``{message, type, code?, traceback}`` of an exception a task raised."""
    error: dict[str, Any] = {"message": str(exc) or type(exc).__name__,
                             "type": type(exc).__name__}
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        error["code"] = code
    error["traceback"] = _bounded_traceback(exc)
    return error


def _bounded_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    data = text.encode()
    if len(data) <= TRACEBACK_LIMIT:
        return text
    tail = data[-(TRACEBACK_LIMIT - 4):].decode(errors="ignore")
    return "...\n" + tail[tail.find("\n") + 1:]


def _failed(task: Task, ctx: JobContext, exc: BaseException) -> dict[str, Any]:
    """The stored error of a task that raised, logged with its traceback."""
    job = ctx.job
    log.error("job %s (%s) failed on attempt %d of %d: %s: %s", job.id, task.name,
              job.attempt, job.max_attempts, type(exc).__name__, exc, exc_info=exc)
    return error_of(exc)


async def execute(task: Task, ctx: JobContext, pool: Executor) -> Outcome | None:
    """Call the task with the job's data: async functions on this loop, plain ones in
    ``pool``; apply its timeout; turn what happened into an outcome."""
    try:
        return await _execute(task, ctx, pool)
    finally:
        ctx.close()  # no trailing progress write once the run has ended


async def _execute(task: Task, ctx: JobContext, pool: Executor) -> Outcome | None:
    job = ctx.job
    started = time.perf_counter()

    def done(status: JobStatus, *, result: Any = None, error: dict[str, Any] | None = None,
             retry_now: bool = False) -> Outcome:
        stats = {"durationMs": round((time.perf_counter() - started) * 1000, 3), **ctx.stats}
        return Outcome(job, status, result=result, error=error, stats=stats, seen=ctx.known,
                       retry=policy_of(job.retry, task.retry), retry_now=retry_now)

    scope: asyncio.Timeout | None = None
    try:
        kwargs = task.arguments(job.data)
        if task.is_async:
            call = task.fn(ctx, **kwargs)
        else:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(
                pool, functools.partial(task.fn, SyncJobContext(ctx, loop), **kwargs))
        if task.timeout is None:
            result = await call
        else:
            async with asyncio.timeout(task.timeout) as scope:
                result = await call
    except JobCancelled:
        return done(JobStatus.CANCELLED)
    except LeaseLost:
        return None
    except asyncio.CancelledError:
        if ctx.stopped is StopReason.INTERRUPTED:
            return done(JobStatus.FAILED, retry_now=True, error={
                "message": "the worker shut down before the job finished",
                "type": "WorkerShutdown", "code": StopReason.INTERRUPTED.value})
        if ctx.stopped is not None:  # lease lost: someone else decides now
            return None
        raise
    except TimeoutError as exc:
        if scope is not None and scope.expired():
            ctx.stopped = StopReason.TIMEOUT  # a thread still running stops at its next checkpoint
            return done(JobStatus.FAILED, error={
                "message": f"timed out after {task.timeout} s", "type": "TimeoutError",
                "code": StopReason.TIMEOUT.value})
        return done(JobStatus.FAILED, error=_failed(task, ctx, exc))
    except Exception as exc:
        return done(JobStatus.FAILED, error=_failed(task, ctx, exc))
    if result is not None:
        try:
            orjson.dumps(result)
        except TypeError as exc:
            return done(JobStatus.FAILED, error={
                "message": f"the task's result cannot be stored as JSON: {exc}",
                "type": "TypeError", "code": "result_not_json"})
    return done(JobStatus.COMPLETED, result=result)
