"""The task registry seen from workers: a worker records itself and its tasks, keeps its
record fresh, removes it at shutdown; stale workers age out; and a job stored without
phases runs with the phases its task declares."""

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, update

from jobtrack.domain.registry import FORGET_LEASES, WorkerInfo
from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.status import JobStatus, PhaseStatus
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.worker import Worker
from jobtrack.store import registry
from jobtrack.store.tables import workers

Running = Callable[..., AbstractAsyncContextManager[Worker]]


async def _workers(app: App) -> list[WorkerInfo]:
    async with app.db.read() as conn:
        return await registry.list_workers(conn, now=datetime.now(UTC),
                                           stale_after=timedelta(seconds=15))


async def test_a_worker_records_itself_and_its_tasks_and_leaves_at_shutdown(
    app: App, running: Running
) -> None:
    gate = asyncio.Event()

    @app.task(queue="ingest", phases=["loading", "indexing"], max_attempts=3,
              retry=RetryPolicy(base=2, factor=3, cap=60, jitter=0), timeout=90)
    async def ingest(ctx: JobContext, document_id: str, pages: int = 1) -> None:
        await gate.wait()

    @app.task(queue="ingest")
    def anything(ctx: JobContext, **data: Any) -> None: ...

    job = await app.enqueue("ingest", document_id="d1")
    async with running(app, queues=["ingest", "other"], concurrency=4) as worker:
        for _ in range(500):
            listed = await _workers(app)
            if listed and listed[0].running == 1:
                break
            await asyncio.sleep(0.01)
        [me] = listed
        assert (me.id, me.queues, me.concurrency, me.running, me.stale) == (
            worker.id, ("ingest", "other"), 4, 1, False)
        assert me.pid > 0 and me.host and me.version
        before = me.heartbeat_at
        await worker.presence.beat()
        [again] = await _workers(app)
        assert again.heartbeat_at > before
        gate.set()
        await app.wait(job.id, timeout=10)
    assert await _workers(app) == []  # removed at a clean shutdown
    async with app.db.read() as conn:
        recorded = {t.declaration.name: t for t in await registry.list_tasks(conn)}
    assert sorted(recorded) == ["anything", "ingest"]  # the declarations stay
    task = recorded["ingest"]
    assert task.worker_id == worker.id
    d = task.declaration
    assert (d.queue, d.phases, d.max_attempts, d.timeout) == (
        "ingest", ("loading", "indexing"), 3, 90)
    assert d.retry == {"base": 2, "factor": 3, "cap": 60, "jitter": 0}
    assert (d.parameters, d.required, d.accepts_any) == (("document_id", "pages"),
                                                         ("document_id",), False)
    assert recorded["anything"].declaration.accepts_any


async def test_stale_workers_are_marked_then_aged_out_and_a_lost_record_comes_back(
    app: App, running: Running
) -> None:
    @app.task
    async def noop(ctx: JobContext) -> None: ...

    async with running(app) as worker:
        while not worker.presence.recorded:
            await asyncio.sleep(0.01)
        long_ago = datetime.now(UTC) - timedelta(
            seconds=app.settings.lease_seconds * FORGET_LEASES + 60)
        lately = datetime.now(UTC) - timedelta(seconds=60)
        async with app.db.write() as conn:
            for wid, at in (("killed", long_ago), ("silent", lately)):
                await registry.register_worker(conn, WorkerInfo(
                    id=wid, host="h", pid=1, queues=("default",), concurrency=1,
                    version="0", started_at=at, heartbeat_at=at), [], at)
                await conn.execute(update(workers).where(workers.c.id == wid)
                                   .values(heartbeat_at=at))
        seen = {w.id: w.stale for w in await _workers(app)}
        assert seen == {"killed": True, "silent": True, worker.id: False}
        await worker.presence.beat()  # ages out the one silent for FORGET_LEASES
        assert {w.id for w in await _workers(app)} == {"silent", worker.id}
        async with app.db.write() as conn:
            await registry.remove_worker(conn, worker.id)  # as if aged out by another
        await worker.presence.beat()
        assert {w.id for w in await _workers(app)} == {"silent", worker.id}


async def test_a_job_stored_without_phases_runs_its_declared_phases(
    app: App, running: Running
) -> None:
    # created before any worker declared the task: no phases stored
    job = await app.enqueue("ingest", document_id="d1", _queue="ingest")
    assert job.phases == ()

    @app.task(queue="ingest", phases=["loading", "indexing"])
    async def ingest(ctx: JobContext, document_id: str) -> str:
        async with ctx.phase("loading", total=1) as phase:
            await phase.advance()
        async with ctx.phase("indexing"):
            pass
        return document_id

    async with running(app):
        done = await app.wait(job.id, timeout=10)
    assert done.status is JobStatus.COMPLETED and done.result == "d1"
    assert [(p.name, p.status) for p in done.phases] == [
        ("loading", PhaseStatus.COMPLETED), ("indexing", PhaseStatus.COMPLETED)]


async def test_concurrent_enqueues_of_an_unread_task_share_one_read(app: App) -> None:
    # a burst of enqueues of a name not read yet: one read, not a connection per enqueue
    cache = registry.DeclarationCache(5.0)
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM tasks" in statement:
            reads.append(statement)

    engine = app.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        got = await asyncio.gather(*(cache.fetch(app.db, ["ingest", "merge"])
                                     for _ in range(20)))
        # a name already being read joins that read; another name gets one of its own
        both = await asyncio.gather(cache.fetch(app.db, ["other"]),
                                    cache.fetch(app.db, ["other", "ingest"]))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all(g == {"ingest": [], "merge": []} for g in got)
    assert both == [{"other": []}, {"other": [], "ingest": []}]
    assert len(reads) == 2, reads


async def test_a_process_trusts_the_declarations_it_read_for_the_cache_period(app: App) -> None:
    now = [0.0]
    cache = registry.DeclarationCache(5.0, clock=lambda: now[0])
    fresh = registry.DeclarationCache(0.0)

    async def seen(c: registry.DeclarationCache) -> list[str]:
        return [d.queue for d in (await c.fetch(app.db, ["ingest"]))["ingest"]]

    assert await seen(cache) == [] and await seen(fresh) == []
    declaring = App(settings=app.settings)

    @declaring.task(queue="ingest")
    async def ingest(ctx: JobContext, document_id: str) -> None: ...

    await Worker(declaring).presence.enter()
    await declaring.close()
    assert await seen(fresh) == ["ingest"]  # ttl 0: read with every enqueue
    now[0] = 4.9
    assert await seen(cache) == []  # no round trip while the answer is fresh
    now[0] = 5.1
    assert await seen(cache) == ["ingest"]
