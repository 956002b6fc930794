"""Tenant isolation (docs/targets.md R4): on every job and queue route, another tenant's job
is a 404 exactly like a missing one, invisible in lists, never claimed nor changed; an
admin key sees and acts on every tenant."""

from typing import Any

import httpx

from jobtrack.domain.ids import new_id
from jobtrack.domain.status import JobStatus
from support.api import Api

#: (method, path template, json body) of every route addressing one job
JOB_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/jobs/{id}", None),
    ("PATCH", "/jobs/{id}", {"status": JobStatus.RUNNING.value}),
    ("PATCH", "/jobs/{id}", {"progress": 5}),
    ("POST", "/jobs/{id}/cancel", None),
    ("POST", "/jobs/{id}/pause", None),
    ("POST", "/jobs/{id}/resume", None),
    ("POST", "/jobs/{id}/phases/one/pause", None),
    ("POST", "/jobs/{id}/phases/one/resume", None),
    ("POST", "/jobs/{id}/retry", None),
    ("GET", "/jobs/{id}/history", None),
]


async def call(api: Api, who: str, method: str, path: str,
               body: dict[str, Any] | None) -> httpx.Response:
    return await api.client.request(method, path, json=body, headers=api.auth(who))


def anonymized(r: httpx.Response, job_id: str) -> tuple[int, str]:
    return r.status_code, r.text.replace(job_id, "ID")


async def test_another_tenants_job_is_a_404_like_a_missing_one_on_every_route(api: Api) -> None:
    running = await api.create(phases=["one", "two"])
    await api.claim()
    pending = await api.create(phases=["one"])
    for job in (running, pending):
        before = (await api.client.get(f"/jobs/{job['jobId']}", headers=api.auth())).json()
        history = (await api.client.get(f"/jobs/{job['jobId']}/history",
                                        headers=api.auth())).json()
        for method, template, body in JOB_ROUTES:
            missing_id = new_id()
            theirs = await call(api, "b", method, template.format(id=job["jobId"]), body)
            missing = await call(api, "b", method, template.format(id=missing_id), body)
            assert theirs.status_code == 404, (method, template, theirs.text)
            assert anonymized(theirs, job["jobId"]) == anonymized(missing, missing_id)
        after = (await api.client.get(f"/jobs/{job['jobId']}", headers=api.auth())).json()
        assert after == before  # nothing changed
        assert (await api.client.get(f"/jobs/{job['jobId']}/history",
                                     headers=api.auth())).json() == history


async def test_lists_queues_and_claims_show_only_the_callers_tenant(api: Api) -> None:
    mine = await api.create(queueName="shared", name="same")
    theirs = await api.create("b", queueName="shared", name="same")
    for params in ({}, {"queueName": "shared"}, {"name": "same"},
                   {"status": JobStatus.PENDING.value}):
        a = (await api.client.get("/jobs", params=params, headers=api.auth("a"))).json()
        b = (await api.client.get("/jobs", params=params, headers=api.auth("b"))).json()
        assert [j["jobId"] for j in a["items"]] == [mine["jobId"]]
        assert [j["jobId"] for j in b["items"]] == [theirs["jobId"]]
    a_queues = (await api.client.get("/queues", headers=api.auth("a"))).json()
    assert [(q["queueName"], q["counts"]["pending"]) for q in a_queues] == [("shared", 1)]
    await api.create("b", queueName="b-only")
    b_queues = (await api.client.get("/queues", headers=api.auth("b"))).json()
    assert sorted(q["queueName"] for q in b_queues) == ["b-only", "shared"]
    assert [j["jobId"] for j in await api.claim("b", queue="shared", limit=10)] == [
        theirs["jobId"]]
    assert [j["jobId"] for j in await api.claim("a", queue="shared", limit=10)] == [
        mine["jobId"]]
    # a cursor from another tenant's page reveals nothing either
    page = (await api.client.get("/jobs", params={"cursor": theirs["jobId"]},
                                 headers=api.auth("a"))).json()
    assert all(j["jobId"] != theirs["jobId"] for j in page["items"])


async def test_flow_filter_never_crosses_tenants(api: Api) -> None:
    await api.create()
    r = await api.client.get("/jobs", params={"flowId": new_id()}, headers=api.auth("b"))
    assert r.status_code == 200 and r.json() == {"items": [], "nextCursor": None}


async def test_admin_sees_and_acts_on_every_tenant(api: Api) -> None:
    a = await api.create("a", queueName="qa")
    b = await api.create("b", queueName="qb", phases=["one"])
    for job in (a, b):
        r = await api.client.get(f"/jobs/{job['jobId']}", headers=api.auth("admin"))
        assert r.status_code == 200 and r.json()["jobId"] == job["jobId"]
        h = await api.client.get(f"/jobs/{job['jobId']}/history", headers=api.auth("admin"))
        assert h.status_code == 200 and len(h.json()) == 1
    listed = (await api.client.get("/jobs", headers=api.auth("admin"))).json()
    assert {j["jobId"] for j in listed["items"]} == {a["jobId"], b["jobId"]}
    queues = (await api.client.get("/queues", headers=api.auth("admin"))).json()
    assert sorted(q["queueName"] for q in queues) == ["qa", "qb"]
    [claimed] = await api.claim("admin", queue="qb")
    assert claimed["jobId"] == b["jobId"]
    paused = await api.client.post(f"/jobs/{b['jobId']}/pause", headers=api.auth("admin"))
    assert paused.status_code == 200
    cancelled = await api.client.post(f"/jobs/{a['jobId']}/cancel", headers=api.auth("admin"))
    assert cancelled.json()["status"] == JobStatus.CANCELLED.value
    # the owner sees what the admin did; the other tenant still sees nothing
    assert (await api.client.get(f"/jobs/{a['jobId']}", headers=api.auth("a"))).json()[
        "status"] == JobStatus.CANCELLED.value
    assert (await api.client.get(f"/jobs/{a['jobId']}", headers=api.auth("b"))).status_code \
        == 404
