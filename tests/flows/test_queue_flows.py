"""Flows from Python: ``App.enqueue_flow`` builds the same tree as ``POST /flows``, and a
real Worker runs it children first, on SQLite and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobtrack.domain.records import Job
from jobtrack.domain.retry import RetryPolicy, policy_of
from jobtrack.domain.spec import Submission, resolve
from jobtrack.domain.status import FlowStatus, JobStatus, Step
from jobtrack.errors import NotFound, ValidationFailed
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.flows import FlowJob, flow_jobs, get_flow, wait_flow
from jobtrack.queue.worker import Worker
from support.api import Api
from support.store import row_counts


@pytest.fixture
async def app(api: Api) -> AsyncIterator[App]:
    the_app = App(settings=api.settings, tenant="t1")
    yield the_app
    await the_app.close()


def shape(jobs: list[Job]) -> list[tuple[Any, ...]]:
    """What must agree between two ways of building a tree (ids and times aside)."""
    names = {j.id: j.name for j in jobs}
    return [(j.name, j.queue_name, names.get(j.parent_job_id or ""), j.step, j.priority,
             j.max_attempts, tuple(p.name for p in j.phases),
             {k: v for k, v in j.data.items() if k != "flowId"}, j.children_left)
            for j in jobs]


async def test_enqueue_flow_builds_the_same_tree_as_the_api(api: Api, app: App) -> None:
    @app.task(queue="embed", phases=["chunk", "embed"], max_attempts=3)
    async def embed(ctx: JobContext, doc: str) -> None: ...

    body = {"flowname": "ingest", "name": "assemble", "queueName": "assemble",
            "data": {"doc": "a.pdf"}, "opts": {"priority": 5},
            "children": [
                {"name": "extract", "queueName": "extract", "data": {"page": 1}},
                {"name": "embed", "queueName": "embed", "data": {"doc": "a.pdf"},
                 "opts": {"phases": ["chunk", "embed"], "maxAttempts": 3},
                 "children": [{"name": "ocr", "queueName": "gpu"}]}]}
    via_http = await api.ok("POST", "/flows", status=201, json=body)
    flow = await app.enqueue_flow("ingest", FlowJob(
        "assemble", doc="a.pdf", _queue="assemble", _priority=5, children=[
            FlowJob("extract", page=1, _queue="extract"),
            FlowJob("embed", doc="a.pdf", children=[FlowJob("ocr", _queue="gpu")]),
        ]))
    assert (flow.flowname, flow.name, flow.queue_name, flow.status, flow.progress.total) == (
        "ingest", "assemble", "assemble", FlowStatus.PENDING, 4)
    ours = await flow_jobs(app, flow.id)
    theirs = await flow_jobs(app, via_http["flowId"])
    assert shape(ours) == shape(theirs)
    assert all(j.flow_id == flow.id and j.data["flowId"] == flow.id for j in ours)
    assert ours[0].step == Step.WAITING_CHILDREN
    assert (await get_flow(app, flow.id)) == flow
    other = App(settings=api.settings, tenant="t2")
    try:
        assert await get_flow(other, flow.id) is None
        assert await flow_jobs(other, flow.id) == []
    finally:
        await other.close()


async def test_a_worker_runs_the_flow_children_first(app: App) -> None:
    ran: list[str] = []

    @app.task(queue="extract")
    async def extract(ctx: JobContext, page: int) -> dict[str, int]:
        ran.append(f"extract-{page}")
        await asyncio.sleep(0.01)
        return {"page": page}

    @app.task(queue="embed", phases=["chunk", "embed"])
    async def embed(ctx: JobContext, flowId: str) -> str:  # the wire's name
        ran.append("embed")
        async with ctx.phase("chunk", total=2) as chunk:
            await chunk.advance(2)
        async with ctx.phase("embed"):
            pass
        return flowId

    @app.task(queue="assemble")
    def assemble(ctx: Any, doc: str) -> dict[str, Any]:
        ran.append("assemble")
        return {"doc": doc, "pages": 2}

    flow = await app.enqueue_flow("ingest", FlowJob("assemble", doc="a.pdf", children=[
        FlowJob("extract", page=1), FlowJob("extract", page=2), FlowJob("embed")]))
    worker = Worker(app, concurrency=4, grace_seconds=5)
    running = asyncio.create_task(worker.run())
    try:
        done = await wait_flow(app, flow.id, timeout=30)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert done.status is FlowStatus.COMPLETED
    assert (done.progress.completed, done.progress.percentage) == (4, 100.0)
    assert done.result == {"doc": "a.pdf", "pages": 2}
    assert ran[-1] == "assemble" and sorted(ran[:-1]) == ["embed", "extract-1", "extract-2"]
    jobs = await flow_jobs(app, flow.id)
    root, children = jobs[0], jobs[1:]
    assert all(c.status is JobStatus.COMPLETED for c in children)
    assert root.started_at is not None
    assert all(c.completed_at is not None and c.completed_at <= root.started_at
               for c in children)
    by_name = {j.name: j for j in children}
    assert by_name["embed"].result == flow.id  # a task taking flowId receives it
    assert [p.status.value for p in by_name["embed"].phases] == ["completed", "completed"]


async def test_a_failing_child_fails_the_flow_and_its_parent_never_runs(app: App) -> None:
    ran: list[str] = []

    @app.task(queue="q1")
    async def broken(ctx: JobContext) -> None:
        raise RuntimeError("disk full")

    @app.task(queue="q2")
    async def parent(ctx: JobContext) -> None:
        ran.append("parent")

    flow = await app.enqueue_flow("fails", FlowJob("parent", children=[FlowJob("broken")]))
    worker = Worker(app, concurrency=2, grace_seconds=5)
    running = asyncio.create_task(worker.run())
    try:
        done = await wait_flow(app, flow.id, timeout=30)
        await asyncio.sleep(0.1)  # give the worker a chance to (wrongly) run the parent
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert done.status is FlowStatus.FAILED and ran == []
    assert done.error is not None and "disk full" in str(done.error)
    statuses = [j.status for j in await flow_jobs(app, flow.id)]
    assert statuses == [JobStatus.FAILED, JobStatus.FAILED]


async def test_bad_trees_are_refused_before_anything_is_stored(api: Api, app: App) -> None:
    before = await row_counts(api.db)
    deep = FlowJob("leaf")
    for _ in range(60):  # far past flow_max_depth (4 in these tests)
        deep = FlowJob("node", children=[deep])
    with pytest.raises(ValidationFailed, match="deeper than the limit of 4"):
        await app.enqueue_flow("deep", deep)
    with pytest.raises(ValidationFailed, match="more than the limit of 40 jobs"):
        await app.enqueue_flow("wide", FlowJob("r", children=[FlowJob("c")] * 40))
    with pytest.raises(ValidationFailed, match="_colour"):
        FlowJob("x", _colour="red")
    with pytest.raises(ValidationFailed, match="flowname"):
        await app.enqueue_flow(" ", FlowJob("x"))
    assert await row_counts(api.db) == before


async def test_python_enqueue_takes_bullmq_opts(app: App) -> None:
    first = await app.enqueue("bq", _opts={"attempts": 3, "priority": 4, "jobId": "k"})
    assert (first.max_attempts, first.priority, first.idempotency_key) == (3, -4, "k")
    again = await app.enqueue("bq", _opts={"jobId": "k"})
    assert again.id == first.id
    with pytest.raises(ValidationFailed, match="not supported"):
        await app.enqueue("bq", _opts={"lifo": True})
    flow = await app.enqueue_flow("f", FlowJob("root", _opts={"attempts": 2, "backoff": 1000}))
    [root] = await flow_jobs(app, flow.id)
    assert root.max_attempts == 2
    assert root.retry == {"base": 1.0, "factor": 1.0, "cap": 1.0, "jitter": 0.0}
    with pytest.raises(ValidationFailed, match="not supported in a flow"):
        await app.enqueue_flow("f", FlowJob("root", _opts={"jobId": "x"}))


async def test_a_worker_retries_after_the_jobs_own_bullmq_backoff(app: App) -> None:
    @app.task(queue="bq")
    async def flaky(ctx: JobContext) -> None:
        raise RuntimeError("down")

    job = await app.enqueue(
        "flaky", _opts={"attempts": 3, "backoff": {"type": "fixed", "delay": 7_200_000}})
    worker = Worker(app, concurrency=1, grace_seconds=5)
    running = asyncio.create_task(worker.run())
    try:
        for _ in range(600):
            stored = await app.get_job(job.id)
            assert stored is not None
            if stored.attempt == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert stored.status is JobStatus.PENDING and stored.attempt == 2
    assert stored.run_at is not None and stored.updated_at is not None
    # the task's own policy waits at most 300 s; the job's backoff says two hours
    assert stored.run_at - stored.updated_at == timedelta(hours=2)


def test_bullmq_backoff_maps_onto_a_retry_policy() -> None:
    def policy(backoff: Any) -> RetryPolicy:
        sub = Submission(name="n", bullmq={"backoff": backoff})
        spec = resolve(sub, None, now=datetime.now(UTC), default_max_attempts=1)
        return policy_of(spec.retry, RetryPolicy())

    assert [policy({"type": "exponential", "delay": 500}).delay(n) for n in (1, 2, 3)] == [
        0.5, 1.0, 2.0]
    assert [policy({"type": "fixed", "delay": 1500}).delay(n) for n in (1, 4)] == [1.5, 1.5]
    assert policy(2000).delay(3) == 2.0
    for bad in ({"type": "custom", "delay": 1}, {"type": "fixed", "delay": -1},
                {"type": "fixed", "delay": 1, "jitter": 0.5}):
        with pytest.raises(ValidationFailed, match="backoff"):
            policy(bad)


async def test_wait_flow_times_out_with_its_progress_and_refuses_an_unknown_flow(
    app: App,
) -> None:
    flow = await app.enqueue_flow("ingest", FlowJob("assemble", _queue="q", children=[
        FlowJob("extract", _queue="q")]))
    with pytest.raises(TimeoutError, match=rf"^flow {flow.id} is still pending after 0.05 s "
                                           r"\(0/2 completed\)$"):
        await wait_flow(app, flow.id, timeout=0.05)
    with pytest.raises(NotFound, match="flow 'no-such-flow' not found"):
        await wait_flow(app, "no-such-flow", timeout=0.05)
