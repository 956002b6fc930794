"""``GET /jobs?step=`` (BullMQ's finer states) and the per-step counts of ``GET /queues``."""

from typing import Any

from jobtrack.domain.status import PhaseStatus, Step
from support.api import Api


async def post(api: Api, **fields: Any) -> str:
    r = await api.client.post("/jobs", headers=api.auth(),
                              json={"queueName": "st", "name": "n", **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["jobId"])


async def ids_at(api: Api, step: str) -> set[str]:
    r = await api.client.get("/jobs", headers=api.auth(),
                             params={"step": step, "queueName": "st"})
    assert r.status_code == 200, r.text
    return {j["jobId"] for j in r.json()["items"]}


async def test_step_filter_and_queue_step_counts(api: Api) -> None:
    queued = await post(api)
    delayed = await post(api, delaySeconds=3600)
    running = await post(api, phases=["load", "index"], priority=10)
    paused = await post(api, phases=["load", "index"], priority=10)
    r = await api.client.post("/flows", headers=api.auth(), json={
        "flowname": "f", "name": "root", "queueName": "st",
        "children": [{"name": "kid", "queueName": "st"}]})
    assert r.status_code == 201, r.text
    root = r.json()["flow"]["rootJobId"]
    claimed = await api.client.post("/queues/st/claim", headers=api.auth(), json={"limit": 2})
    assert {j["jobId"] for j in claimed.json()["items"]} == {running, paused}
    r = await api.client.post(f"/jobs/{paused}/pause", headers=api.auth())
    assert r.status_code == 200, r.text
    assert r.json()["phases"][0]["status"] == PhaseStatus.PAUSED

    kid = (await ids_at(api, Step.QUEUED)) - {queued}
    assert len(kid) == 1
    assert await ids_at(api, Step.DELAYED) == {delayed}
    assert await ids_at(api, Step.WAITING_CHILDREN) == {root}
    assert await ids_at(api, "load") == {running, paused}
    assert await ids_at(api, "index") == set()
    assert await ids_at(api, PhaseStatus.PAUSED) == {paused}

    queues = await api.client.get("/queues", headers=api.auth())
    [st] = [q for q in queues.json() if q["queueName"] == "st"]
    assert st["steps"] == {"delayed": 1, "waitingChildren": 1, "paused": 1, "stuck": 0}
