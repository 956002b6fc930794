"""The worker runs jobs for real: results, failures and retries, timeouts, priorities,
delays, and only what it serves."""

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest

from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.status import JobStatus, Step
from jobtrack.errors import ValidationFailed
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext, SyncJobContext
from jobtrack.queue.worker import Worker
from jobtrack.settings import Settings
from jobtrack.store import events as store_events

Running = Callable[..., AbstractAsyncContextManager[Worker]]
FAST_RETRY = RetryPolicy(base=0.01, factor=1, jitter=0)


async def test_async_and_plain_tasks_complete_with_results(app: App, running: Running) -> None:
    @app.task
    async def add(ctx: JobContext, a: int, b: int) -> dict[str, int]:
        return {"sum": a + b, "attempt": ctx.attempt}

    @app.task
    def shout(ctx: SyncJobContext, word: str) -> str:
        ctx.stats["letters"] = len(word)
        return word.upper()

    jobs = [await app.enqueue("add", a=i, b=1) for i in range(5)]
    plain = await app.enqueue("shout", word="hello")
    async with running(app, concurrency=3):
        done = [await app.wait(j.id, timeout=10) for j in [*jobs, plain]]
    assert [d.status for d in done] == [JobStatus.COMPLETED] * 6
    assert [d.result for d in done[:5]] == [{"sum": i + 1, "attempt": 1} for i in range(5)]
    assert done[5].result == "HELLO"
    assert done[5].stats is not None and done[5].stats["letters"] == 5
    assert "durationMs" in done[5].stats
    assert all(d.worker_id is None and d.lease_expires_at is None for d in done)
    async with app.db.read() as conn:
        history = await store_events.history(conn, plain.id)
    assert [(e.from_status, e.to_status) for e in history] == [
        (None, "pending"), ("pending", "running"), ("running", "completed")]


async def test_failures_retry_with_backoff_then_fail(app: App, running: Running) -> None:
    calls: list[int] = []

    @app.task(max_attempts=3, retry=FAST_RETRY)
    async def flaky(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError(f"bad input on attempt {ctx.attempt}")

    job = await app.enqueue("flaky")
    async with running(app):
        done = await app.wait(job.id, timeout=10)
    assert calls == [1, 2, 3]
    assert done.status is JobStatus.FAILED and done.attempt == 3
    assert done.error is not None
    assert {k: v for k, v in done.error.items() if k != "traceback"} == {
        "message": "bad input on attempt 3", "type": "ValueError"}
    async with app.db.read() as conn:
        history = await store_events.history(conn, job.id)
    moves = [(e.from_status, e.to_status, e.attempt) for e in history]
    assert moves == [(None, "pending", 1), ("pending", "running", 1), ("running", "pending", 2),
                     ("pending", "running", 2), ("running", "pending", 3),
                     ("pending", "running", 3), ("running", "failed", 3)]


async def test_a_retry_waits_for_its_backoff(app: App, running: Running) -> None:
    @app.task(max_attempts=2, retry=RetryPolicy(base=30, jitter=0))
    async def once(ctx: JobContext) -> None:
        raise RuntimeError("try later")

    job = await app.enqueue("once")
    async with running(app):
        for _ in range(200):
            stored = await app.get_job(job.id)
            assert stored is not None
            if stored.attempt == 2:
                break
            await asyncio.sleep(0.02)
    assert stored.status is JobStatus.PENDING and stored.step == Step.DELAYED
    assert stored.run_at is not None
    assert stored.run_at - stored.updated_at >= timedelta(seconds=29)
    assert stored.error is not None and stored.error["message"] == "try later"


async def test_a_task_over_its_timeout_fails_with_code_timeout(app: App, running: Running) -> None:
    @app.task(timeout=0.2)
    async def slow(ctx: JobContext) -> None:
        await asyncio.sleep(30)

    @app.task(timeout=0.2)
    def slow_plain(ctx: SyncJobContext) -> None:
        time.sleep(0.5)

    jobs = [await app.enqueue("slow"), await app.enqueue("slow_plain")]
    async with running(app):
        done = [await app.wait(j.id, timeout=10) for j in jobs]
    for d in done:
        assert d.status is JobStatus.FAILED
        assert d.error is not None and d.error["code"] == "timeout"


async def test_priorities_then_age_decide_the_order(app: App, running: Running) -> None:
    order: list[str] = []

    @app.task
    async def record(ctx: JobContext, tag: str) -> None:
        order.append(tag)

    await app.enqueue("record", tag="low-1", _priority=0)
    await app.enqueue("record", tag="high", _priority=10)
    await app.enqueue("record", tag="low-2", _priority=0)
    last = await app.enqueue("record", tag="mid", _priority=5)
    async with running(app, concurrency=1):
        await app.wait(last.id, timeout=10)
        await asyncio.sleep(0.1)
    assert order == ["high", "mid", "low-1", "low-2"]


async def test_a_delayed_job_waits_for_its_time(app: App, running: Running) -> None:
    @app.task
    async def later(ctx: JobContext) -> None: ...

    job = await app.enqueue("later", _delay=0.6)
    async with running(app):
        await asyncio.sleep(0.3)
        early = await app.get_job(job.id)
        done = await app.wait(job.id, timeout=10)
    assert early is not None and early.status is JobStatus.PENDING
    assert early.step == Step.DELAYED
    assert done.started_at is not None and done.started_at >= job.created_at + timedelta(
        seconds=0.6)


async def test_a_worker_takes_only_its_queues_and_task_names(
    app: App, running: Running
) -> None:
    @app.task(queue="mine")
    async def known(ctx: JobContext) -> None: ...

    other_queue = await app.enqueue("known", _queue="theirs")
    unknown = await app.enqueue("unknown", _queue="mine")
    mine = await app.enqueue("known")
    async with running(app, queues=["mine"]):
        await app.wait(mine.id, timeout=10)
        await asyncio.sleep(0.2)
    for job in (other_queue, unknown):
        stored = await app.get_job(job.id)
        assert stored is not None and stored.status is JobStatus.PENDING


async def test_bad_arguments_and_unstorable_results_fail_cleanly(
    app: App, running: Running
) -> None:
    # stored before the task was declared (so not checked): it still fails cleanly
    wrong = await app.enqueue("strict", b=1)

    @app.task
    async def strict(ctx: JobContext, a: int) -> Any:
        return {1, 2}  # a set is not JSON

    with pytest.raises(ValidationFailed, match="no parameter 'b'"):
        await app.enqueue("strict", b=1)  # declared now: refused when enqueued
    unstorable = await app.enqueue("strict", a=1)
    async with running(app):
        wrong_done = await app.wait(wrong.id, timeout=10)
        unstorable_done = await app.wait(unstorable.id, timeout=10)
    assert wrong_done.status is JobStatus.FAILED
    assert wrong_done.error is not None and wrong_done.error["type"] == "TypeError"
    assert unstorable_done.error is not None
    assert unstorable_done.error["code"] == "result_not_json"


async def test_the_default_concurrency_comes_from_the_settings(settings: Settings) -> None:
    """No tuning flags: a worker runs JOBTRACK_WORKER_CONCURRENCY (100) jobs at once, in
    claim batches of 50, so the defaults are the fast path."""
    assert Worker(App(settings=settings)).concurrency == 100
    tuned = settings.model_copy(update={"worker_concurrency": 7})
    assert Worker(App(settings=tuned)).concurrency == 7
    assert Worker(App(settings=tuned), concurrency=3).concurrency == 3
