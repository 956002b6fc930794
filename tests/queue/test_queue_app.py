"""The Python task API: registering tasks and enqueueing jobs."""

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import jobtrack
from jobtrack.domain.status import JobStatus, PhaseStatus, Step
from jobtrack.errors import NotFound, TaskNotFound, ValidationFailed
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext, SyncJobContext
from jobtrack.queue.flows import FlowJob
from jobtrack.queue.worker import Worker
from jobtrack.store import events as store_events
from jobtrack.store import jobs as store_jobs
from jobtrack.store.tables import tenants


def test_tasks_register_async_and_plain_functions() -> None:
    app = App("sqlite://")

    @app.task(queue="ingest", phases=["load", "index"], max_attempts=3, timeout=2)
    async def ingest(ctx: JobContext, document_id: str) -> str:
        return document_id

    @app.task
    def thumbnail(ctx: SyncJobContext, **data: Any) -> None:
        return None

    assert ingest.__name__ == "ingest"  # the function comes back unchanged
    assert app.tasks["ingest"].is_async and not app.tasks["thumbnail"].is_async
    assert app.tasks["ingest"].phases == ("load", "index")
    assert app.tasks["ingest"].queue == "ingest" and app.tasks["ingest"].timeout == 2
    assert app.tasks.queues() == ["ingest", "default"]
    with pytest.raises(ValidationFailed, match="already registered"):
        app.task(name="ingest")(thumbnail)
    with pytest.raises(TaskNotFound, match="registered: ingest, thumbnail"):
        app.tasks["nope"]


async def test_enqueue_uses_the_task_and_its_options(app: App) -> None:
    @app.task(queue="ingest", phases=["load", "index"], max_attempts=3)
    async def ingest(ctx: JobContext, document_id: str) -> None: ...

    before = datetime.now(UTC)
    job = await app.enqueue("ingest", document_id="d1", _priority=7, _delay=30)
    stored = await app.get_job(job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING and stored.step == Step.DELAYED
    assert stored.queue_name == "ingest" and stored.priority == 7
    assert stored.max_attempts == 3 and stored.data == {"document_id": "d1"}
    assert [p.status for p in stored.phases] == [PhaseStatus.NOT_STARTED] * 2
    assert stored.run_at is not None and stored.run_at >= before + timedelta(seconds=29)
    assert stored.tenant == "default"
    async with app.db.read() as conn:
        history = await store_events.history(conn, job.id)
        assert [e.type for e in history] == ["job.created"]
        assert (await conn.execute(tenants.select())).mappings().one()["name"] == "default"


async def test_enqueue_options_idempotency_and_unknown_names(app: App) -> None:
    first = await app.enqueue("elsewhere", x=1, _queue="remote", _idempotency_key="k1")
    again = await app.enqueue("elsewhere", x=2, _queue="remote", _idempotency_key="k1")
    assert again.id == first.id and again.data == {"x": 1}
    assert first.queue_name == "remote" and first.max_attempts == 1
    with pytest.raises(ValidationFailed, match="_colour"):
        await app.enqueue("elsewhere", _colour="red")


async def test_enqueue_many_inserts_every_job_with_its_created_event(app: App) -> None:
    jobs = await app.enqueue_many("bulk", [{"i": i} for i in range(300)], priority=2)
    assert len({j.id for j in jobs}) == 300
    async with app.db.read() as conn:
        seen = await store_events.read_after(conn, 0, limit=1000)
    assert sorted(e.job_id for e in seen if e.type == "job.created") == sorted(j.id for j in jobs)
    stored = await app.get_job(jobs[-1].id)
    assert stored is not None and stored.data == {"i": 299} and stored.priority == 2


async def test_enqueue_sync_from_code_without_an_event_loop(app: App) -> None:
    job = await asyncio.to_thread(app.enqueue_sync, "report", month="2026-11", _priority=1)
    stored = await app.get_job(job.id)
    assert stored is not None and stored.data == {"month": "2026-11"}


async def test_another_tenants_job_is_invisible(app: App) -> None:
    job = await app.enqueue("x")
    other = App(settings=app.settings, tenant="other")
    try:
        assert await other.get_job(job.id) is None
        theirs = await other.enqueue("x")
        assert (await other.get_job(theirs.id)) is not None
        assert await app.get_job(theirs.id) is None
    finally:
        await other.close()


def test_public_names_are_lazy_and_sorted() -> None:
    assert jobtrack.__all__ == sorted(jobtrack.__all__)
    for name in jobtrack.__all__:
        assert getattr(jobtrack, name) is not None
    code = "import sys, jobtrack; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_task_without_the_context_first_is_refused_when_declared() -> None:
    app = App("sqlite://")
    with pytest.raises(ValidationFailed, match=r"first parameter .* job context \(ctx\).*"
                       r"'x'.*def add\(ctx, x, y\)"):
        @app.task
        def add(x: int, y: int) -> int:  # Celery style: would fail at run time
            return x + y
    with pytest.raises(ValidationFailed, match="it takes none"):
        app.task(name="nothing")(lambda: None)
    with pytest.raises(ValidationFailed, match="'b' cannot be given by keyword"):
        @app.task
        def positional(ctx: JobContext, b: int, /) -> None: ...
    assert "add" not in app.tasks and "positional" not in app.tasks

    # the context may be named otherwise when annotated, or taken by *args
    @app.task
    def annotated(c: SyncJobContext, x: int, y: int = 0) -> int:
        return x + y

    @app.task
    async def anything(*args: Any, **data: Any) -> None: ...

    assert app.tasks["annotated"].parameters == ("x", "y")
    assert app.tasks["annotated"].required == ("x",)
    assert app.tasks["anything"].accepts is None


async def test_enqueue_resolves_against_the_task_a_worker_declared(app: App) -> None:
    worker_app = App(settings=app.settings)

    @worker_app.task(queue="ingest", phases=["loading", "indexing"], max_attempts=3)
    async def ingest(ctx: JobContext, document_id: str) -> None: ...

    worker = Worker(worker_app)
    await worker.presence.enter()
    await worker_app.close()
    assert "ingest" not in app.tasks  # this App only enqueues: it learns from the database
    job = await app.enqueue("ingest", document_id="d1")
    assert (job.queue_name, job.max_attempts) == ("ingest", 3)
    assert [p.name for p in job.phases] == ["loading", "indexing"]
    with pytest.raises(ValidationFailed, match="no parameter 'documentId'") as bad:
        await app.enqueue("ingest", documentId="d1")
    assert bad.value.details == {"field": "data.documentId", "accepted": ["document_id"]}
    with pytest.raises(ValidationFailed) as many:
        await app.enqueue_many("ingest", [{"document_id": "a"}, {}])
    assert many.value.details["field"] == "data.document_id"
    with pytest.raises(ValidationFailed) as flow:
        await app.enqueue_flow("f", FlowJob("ingest", document_id="a", children=[
            FlowJob("ingest", document_id="b", _phases=["indexing"])]))
    assert flow.value.details["field"] == "children[0].phases"
    async with app.db.read() as conn:
        stored, _ = await store_jobs.list_jobs(conn, store_jobs.JobFilter(tenant=None),
                                               limit=10)
    assert [j.id for j in stored] == [job.id]  # nothing of the refused ones was stored

    # a task this App registers is checked too, before anything is stored
    @app.task(queue="local")
    def resize(ctx: SyncJobContext, width: int) -> None: ...

    with pytest.raises(ValidationFailed, match="'height'"):
        await app.enqueue("resize", width=1, height=2)


async def test_wait_times_out_naming_the_status_and_refuses_an_unknown_job(app: App) -> None:
    @app.task
    async def idle(ctx: JobContext) -> None: ...

    job = await app.enqueue("idle")
    with pytest.raises(TimeoutError, match=rf"^job {job.id} is still pending after 0.05 s$"):
        await app.wait(job.id, timeout=0.05)
    with pytest.raises(NotFound, match="job 'no-such-job' not found"):
        await app.wait("no-such-job", timeout=0.05)
