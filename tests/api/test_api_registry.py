"""The task registry over HTTP: jobs resolved against the tasks workers declared (defaults,
data checked at enqueue), and ``GET /workers`` / ``GET /tasks``."""

from typing import Any

from jobtrack.api.routes.registry import TaskPublic, WorkerPublic
from jobtrack.queue.app import App
from jobtrack.queue.context import JobContext
from jobtrack.queue.worker import Worker
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import Api, assert_error
from support.store import count_rows

PHASES = ["loading", "chunking", "embedding", "indexing"]


async def declare(settings: Settings) -> Worker:
    """A worker that recorded itself and its tasks, as ``jobtrack worker`` does on start."""
    app = App(settings=settings)

    @app.task(queue="ingest", phases=PHASES, max_attempts=3)
    async def ingest(ctx: JobContext, document_id: str, pages: int = 1) -> None: ...

    @app.task(queue="ingest")
    async def loose(ctx: JobContext, **data: Any) -> None: ...

    worker = Worker(app, queues=["ingest"], concurrency=2)
    try:
        await worker.presence.enter()
    finally:
        await app.close()
    assert worker.presence.recorded
    return worker


async def test_a_job_gets_its_declared_phases_and_attempts(api: Api, settings: Settings) -> None:
    await declare(settings)
    job = await api.create(queueName="ingest", name="ingest", data={"document_id": "d1"})
    assert [p["name"] for p in job["phases"]] == PHASES
    assert job["maxAttempts"] == 3
    given = await api.create(queueName="ingest", name="ingest", maxAttempts=5,
                             phases=PHASES, data={"document_id": "d1", "pages": 2})
    assert given["maxAttempts"] == 5 and [p["name"] for p in given["phases"]] == PHASES
    # another queue, or a task nobody declared: taken as sent (external workers)
    elsewhere = await api.create(queueName="other", name="ingest", data={"x": 1})
    unknown = await api.create(queueName="ingest", name="external", data={"x": 1})
    assert elsewhere["phases"] == unknown["phases"] == []
    assert elsewhere["maxAttempts"] == unknown["maxAttempts"] == 1


async def test_data_the_task_cannot_take_is_a_422_naming_the_field(
    api: Api, settings: Settings, db: Database
) -> None:
    await declare(settings)

    async def refused(**body: Any) -> dict[str, Any]:
        r = await api.client.post("/jobs", headers=api.auth(), json={
            "queueName": "ingest", "name": "ingest", **body})
        return assert_error(r, 422, "validation_error")

    camel = await refused(data={"documentId": "d1"})
    assert camel["details"]["field"] == "data.documentId"
    assert "document_id" in camel["message"]
    missing = await refused(data={"pages": 3})
    assert missing["details"]["field"] == "data.document_id"
    phases = await refused(data={"document_id": "d1"}, phases=["loading"])
    assert phases["details"]["field"] == "phases"
    assert phases["details"]["accepted"] == PHASES
    assert await count_rows(db) == 0
    # a task taking **kwargs takes any key
    await api.create(queueName="ingest", name="loose", data={"anything": 1})


async def test_a_flow_job_is_checked_against_its_task(
    api: Api, settings: Settings, db: Database
) -> None:
    await declare(settings)
    body = {"flowname": "ingest-pdf", "name": "publish", "queueName": "publish",
            "children": [{"name": "ingest", "queueName": "ingest",
                          "data": {"document_id": "d1"}},
                         {"name": "ingest", "queueName": "ingest",
                          "data": {"documentId": "d2"}}]}
    r = await api.client.post("/flows", headers=api.auth(), json=body)
    assert assert_error(r, 422, "validation_error")["details"]["field"] == (
        "children[1].data.documentId")
    assert await count_rows(db) == 0
    body["children"][1]["data"] = {"document_id": "d2"}
    r = await api.client.post("/flows", headers=api.auth(), json=body)
    assert r.status_code == 201, r.text
    flow_id = r.json()["flowId"]
    r = await api.client.get(f"/flows/{flow_id}?include=jobs", headers=api.auth())
    children = r.json()["jobs"]["children"]
    assert [[p["name"] for p in c["phases"]] for c in children] == [PHASES, PHASES]
    assert [c["maxAttempts"] for c in children] == [3, 3]


async def test_workers_and_tasks_are_listed(api: Api, settings: Settings) -> None:
    worker = await declare(settings)
    r = await api.client.get("/workers", headers=api.auth("admin"))
    assert r.status_code == 200, r.text
    [listed] = r.json()
    assert WorkerPublic.model_validate(listed).model_dump(mode="json", by_alias=True).keys() \
        == listed.keys()
    assert (listed["workerId"], listed["queues"], listed["concurrency"], listed["runningJobs"],
            listed["stale"]) == (worker.id, ["ingest"], 2, 0, False)
    assert_error(await api.client.get("/workers", headers=api.auth()), 403, "forbidden")
    assert_error(await api.client.get("/workers"), 401, "unauthorized")

    r = await api.client.get("/tasks", headers=api.auth("b"))  # any tenant's key
    assert r.status_code == 200, r.text
    tasks = {t["name"]: t for t in r.json()}
    assert sorted(tasks) == ["ingest", "loose"]
    ingest = tasks["ingest"]
    assert TaskPublic.model_validate(ingest).model_dump(mode="json", by_alias=True).keys() \
        == ingest.keys()
    assert (ingest["queueName"], ingest["phases"], ingest["maxAttempts"],
            ingest["timeoutSeconds"], ingest["parameters"], ingest["requiredParameters"],
            ingest["acceptsAnyData"], ingest["workerId"]) == (
        "ingest", PHASES, 3, None, ["document_id", "pages"], ["document_id"], False, worker.id)
    assert set(ingest["retry"]) == {"base", "factor", "cap", "jitter"}
    assert tasks["loose"]["acceptsAnyData"] is True
