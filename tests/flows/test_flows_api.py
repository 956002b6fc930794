"""The flows scenario over HTTP (seed 003), on SQLite and PostgreSQL: a named flow whose
children live on other queues, claimed and finished by workers over HTTP and reported by
an external system; progress exact at every step; the parent waits, then runs; failure
and cancel cascades."""

from typing import Any

from jobtrack.api.flow_schemas import FlowCreated, FlowDetail, FlowPublic
from jobtrack.api.schemas import JobPublic
from support.api import Api

SCENARIO: dict[str, Any] = {
    "flowname": "ingest-pdf",
    "name": "assemble",
    "queueName": "assemble",
    "data": {"document": "report.pdf"},
    "opts": {"maxAttempts": 1},
    "children": [
        {"name": "extract-text", "queueName": "extract", "data": {"pages": [1, 2]}},
        {"name": "extract-images", "queueName": "extract"},
        {"name": "embed", "queueName": "embed", "opts": {"phases": ["chunk", "embed"]}},
    ],
}


def progress(flow: dict[str, Any]) -> tuple[int, int, int, int, int, float]:
    p = flow["progress"]
    return (p["total"], p["completed"], p["failed"], p["running"], p["pending"],
            p["percentage"])


async def create(api: Api, body: dict[str, Any] | None = None,
                 tenant: str = "t1") -> dict[str, Any]:
    created = await api.ok("POST", "/flows", tenant, 201, json=body or SCENARIO)
    FlowCreated.model_validate(created)
    return created["flow"]  # type: ignore[no-any-return]


async def jobs_by_name(api: Api, flow_id: str) -> dict[str, dict[str, Any]]:
    page = await api.ok("GET", "/jobs", params={"flowId": flow_id, "limit": 100})
    return {j["name"]: j for j in page["items"]}


async def flow(api: Api, flow_id: str) -> dict[str, Any]:
    got = await api.ok("GET", f"/flows/{flow_id}")
    FlowPublic.model_validate(got)
    return got  # type: ignore[no-any-return]


async def claim(api: Api, queue: str, limit: int = 10) -> list[dict[str, Any]]:
    got = await api.ok("POST", f"/queues/{queue}/claim", json={"limit": limit})
    return got["items"]  # type: ignore[no-any-return]


async def test_the_flows_scenario_end_to_end(api: Api) -> None:
    f = await create(api)
    fid = f["flowId"]
    assert (f["flowname"], f["name"], f["queueName"], f["status"]) == (
        "ingest-pdf", "assemble", "assemble", "pending")
    assert progress(f) == (4, 0, 0, 0, 4, 0.0)
    jobs = await jobs_by_name(api, fid)
    assert set(jobs) == {"assemble", "extract-text", "extract-images", "embed"}
    for job in jobs.values():
        assert job["flowId"] == fid and job["data"]["flowId"] == fid
    root = jobs["assemble"]
    assert (f["rootJobId"], root["step"], root["data"]["document"]) == (
        root["jobId"], "waiting-children", "report.pdf")
    assert jobs["extract-text"]["parentJobId"] == root["jobId"]
    assert await claim(api, "assemble") == []  # the parent waits for its children

    # a worker pulling over HTTP takes both extract jobs
    extract = {j["name"]: j for j in await claim(api, "extract")}
    assert set(extract) == {"extract-text", "extract-images"}
    f = await flow(api, fid)
    assert (f["status"], progress(f)) == ("running", (4, 0, 0, 2, 2, 0.0))
    assert f["startedAt"] is not None

    done = await api.ok("PATCH", f"/jobs/{extract['extract-text']['jobId']}",
                        json={"status": "completed", "result": {"chars": 1200}})
    assert done["status"] == "completed"
    assert progress(await flow(api, fid)) == (4, 1, 0, 1, 2, 25.0)

    # the same worker may report through the flow route, with a legacy alias
    reported = await api.call("PUT", f"/flows/{fid}/jobs/{extract['extract-images']['jobId']}",
                              json={"status": "done", "result": {"images": 3}})
    assert reported.status_code == 200, reported.text
    assert 'canonical="completed"' in reported.headers["deprecation"]
    JobPublic.model_validate(reported.json())
    assert reported.json()["status"] == "completed"
    assert progress(await flow(api, fid)) == (4, 2, 0, 0, 2, 50.0)

    # an external system runs "embed" and reports it: started, progress, completed
    embed_id = jobs["embed"]["jobId"]
    running = await api.ok("PUT", f"/flows/{fid}/jobs/{embed_id}",
                           json={"status": "running", "progress": 40})
    assert (running["status"], running["step"], running["progress"]["percentage"]) == (
        "running", "chunk", 40.0)
    assert progress(await flow(api, fid)) == (4, 2, 0, 1, 1, 50.0)
    assert (await jobs_by_name(api, fid))["assemble"]["step"] == "waiting-children"
    await api.ok("PUT", f"/flows/{fid}/jobs/{embed_id}",
                 json={"status": "completed", "result": {"vectors": 42}})

    # the last child completing made the parent runnable in the same transaction
    root = (await jobs_by_name(api, fid))["assemble"]
    assert (root["status"], root["step"]) == ("pending", "queued")
    f = await flow(api, fid)
    assert progress(f) == (4, 3, 0, 0, 1, 75.0)
    [claimed] = await claim(api, "assemble")
    assert claimed["jobId"] == root["jobId"]
    assert progress(await flow(api, fid)) == (4, 3, 0, 1, 0, 75.0)
    await api.ok("PATCH", f"/jobs/{root['jobId']}",
                 json={"status": "completed", "result": {"pages": 2, "ok": True}})
    f = await flow(api, fid)
    assert (f["status"], f["result"], progress(f)) == (
        "completed", {"pages": 2, "ok": True}, (4, 4, 0, 0, 0, 100.0))
    assert f["completedAt"] is not None and f["error"] is None

    history = await api.ok("GET", f"/jobs/{root['jobId']}/history")
    assert [(h["from"], h["to"]) for h in history] == [
        (None, "pending"), ("pending", "running"), ("running", "completed")]


async def test_a_waiting_parent_cannot_be_reported_running(api: Api) -> None:
    f = await create(api)
    answer = await api.call("PUT", f"/flows/{f['flowId']}/jobs/{f['rootJobId']}",
                            json={"status": "running"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "invalid_transition"
    assert "waiting for 3 child" in answer.json()["error"]["message"]
    assert progress(await flow(api, f["flowId"])) == (4, 0, 0, 0, 4, 0.0)


async def test_a_finished_job_is_never_changed_by_a_late_report(api: Api) -> None:
    f = await create(api)
    [job, *_] = await claim(api, "extract", limit=1)
    url = f"/flows/{f['flowId']}/jobs/{job['jobId']}"
    await api.ok("PUT", url, json={"status": "completed"})
    late = await api.call("PUT", url, json={"status": "failed", "error": {"message": "x"}})
    assert late.status_code == 409
    assert progress(await flow(api, f["flowId"])) == (4, 1, 0, 0, 3, 25.0)


async def test_a_failed_child_fails_the_parent_chain_and_the_flow(api: Api) -> None:
    body = {**SCENARIO, "children": [
        {"name": "split", "queueName": "split", "children": [
            {"name": "ocr", "queueName": "ocr"}]},
        {"name": "other", "queueName": "other"}]}
    f = await create(api, body)
    fid = f["flowId"]
    [ocr] = await claim(api, "ocr")
    failed = await api.ok("PUT", f"/flows/{fid}/jobs/{ocr['jobId']}",
                          json={"status": "error", "error": {"message": "tesseract crashed",
                                                             "code": "E_OCR"}})
    assert failed["status"] == "failed"
    jobs = await jobs_by_name(api, fid)
    assert jobs["split"]["status"] == jobs["assemble"]["status"] == "failed"
    assert jobs["split"]["error"]["code"] == "child_failed"
    assert jobs["other"]["status"] == "pending"
    f = await flow(api, fid)
    assert (f["status"], progress(f)) == ("failed", (4, 0, 3, 0, 1, 0.0))
    assert f["error"]["jobId"] == ocr["jobId"]
    assert (f["error"]["message"], f["error"]["code"]) == ("tesseract crashed", "E_OCR")
    assert f["completedAt"] is not None


async def test_cancel_flow_cancels_pending_now_and_running_at_its_report(api: Api) -> None:
    f = await create(api)
    fid = f["flowId"]
    [running, *_] = await claim(api, "extract", limit=1)
    cancelled = await api.ok("POST", f"/flows/{fid}/cancel")
    FlowPublic.model_validate(cancelled)
    assert (cancelled["status"], progress(cancelled)) == ("cancelled", (4, 0, 0, 1, 0, 0.0))
    assert cancelled["progress"]["cancelled"] == 3
    jobs = await jobs_by_name(api, fid)
    assert jobs[running["name"]]["status"] == "running"
    assert jobs[running["name"]]["cancelRequested"] is True
    assert {j["status"] for n, j in jobs.items() if n != running["name"]} == {"cancelled"}
    # the worker learns of it from its own progress report, then acknowledges
    beat = await api.ok("PATCH", f"/jobs/{running['jobId']}", json={"progress": 50})
    assert beat["cancelRequested"] is True
    await api.ok("PUT", f"/flows/{fid}/jobs/{running['jobId']}", json={"status": "cancelled"})
    f = await flow(api, fid)
    assert (f["status"], f["progress"]["cancelled"], f["progress"]["running"]) == (
        "cancelled", 4, 0)
    again = await api.ok("POST", f"/flows/{fid}/cancel")  # nothing left to cancel
    assert again["status"] == "cancelled"


async def test_include_jobs_nests_the_tree(api: Api) -> None:
    body = {**SCENARIO, "children": [
        {"name": "a", "queueName": "qa", "children": [
            {"name": "a1", "queueName": "qb"}, {"name": "a2", "queueName": "qb"}]},
        {"name": "b", "queueName": "qa"}]}
    f = await create(api, body)
    detail = await api.ok("GET", f"/flows/{f['flowId']}", params={"include": "jobs"})
    FlowDetail.model_validate(detail)
    tree = detail["jobs"]
    assert (tree["name"], tree["jobId"], tree["step"]) == (
        "assemble", f["rootJobId"], "waiting-children")

    def shape(node: dict[str, Any]) -> Any:
        return (node["name"], node["queueName"], [shape(c) for c in node["children"]])

    assert shape(tree) == ("assemble", "assemble", [
        ("a", "qa", [("a1", "qb", []), ("a2", "qb", [])]), ("b", "qa", [])])
    assert tree["children"][0]["children"][0]["parentJobId"] == tree["children"][0]["jobId"]
    plain = await api.ok("GET", f"/flows/{f['flowId']}")
    assert "jobs" not in plain
    bad = await api.call("GET", f"/flows/{f['flowId']}", params={"include": "everything"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["accepted"] == ["jobs"]
