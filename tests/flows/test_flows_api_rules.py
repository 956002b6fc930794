"""What ``/flows`` refuses (malformed trees, unknown options, limits: refused whole,
nothing stored), tenant isolation on every flow route, and listing."""

from typing import Any

import pytest
from test_flows_api import SCENARIO, claim, create

from jobtrack.api.flow_schemas import FLOW_OPTS, FlowPage
from support.api import Api
from support.store import row_counts


def chain(depth: int) -> dict[str, Any]:
    """A flow ``depth`` levels deep (the test app allows 4)."""
    node: dict[str, Any] = {"name": f"n{depth}", "queueName": "q"}
    for level in range(depth - 1, 0, -1):
        node = {"name": f"n{level}", "queueName": "q", "children": [node]}
    return {"flowname": "deep", **node}


def wide(n: int) -> dict[str, Any]:
    return {"flowname": "wide", "name": "root", "queueName": "q",
            "children": [{"name": f"c{i}", "queueName": "q"} for i in range(n - 1)]}


MISSING_QUEUE = {**SCENARIO, "children": [
    {"name": "ok", "queueName": "q"},
    {"name": "parent", "queueName": "q", "children": [{"name": "no-queue"}]}]}


@pytest.mark.parametrize(("body", "field", "message"), [
    (MISSING_QUEUE, "children.1.children.0.queueName", "required"),
    ({**SCENARIO, "children": [{"name": "x", "queueName": "q", "data": [1, 2]}]},
     "children.0.data", "dictionary"),
    ({**SCENARIO, "children": {"name": "x", "queueName": "q"}}, "children", "list"),
    ({**SCENARIO, "opts": {"priority": "high"}}, "opts.priority", "integer"),
    ({**SCENARIO, "opts": {"delaySeconds": 5, "runAt": "2030-01-01T00:00:00Z"}}, "opts",
     "not both"),
    ({**SCENARIO, "children": [{"name": "x", "queueName": "q",
                                "opts": {"phases": ["a", "a"]}}]},
     "children.0.opts", "unique"),
    ({**SCENARIO, "children": [{"name": "x", "queueName": "q", "colour": "red"}]},
     "children.0.colour", "Extra inputs"),
    ({k: v for k, v in SCENARIO.items() if k != "flowname"}, "flowname", "required"),
    ({**SCENARIO, "children": [{"name": "", "queueName": "q"}]}, "children.0.name", ""),
])
async def test_a_malformed_tree_is_refused_whole(
    api: Api, body: dict[str, Any], field: str, message: str
) -> None:
    before = await row_counts(api.db)
    answer = await api.call("POST", "/flows", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["field"] == field
    assert message in error["message"]
    assert await row_counts(api.db) == before


async def test_unknown_opts_name_the_accepted_keys(api: Api) -> None:
    body = {**SCENARIO, "children": [{"name": "x", "queueName": "q",
                                      "opts": {"retries": 3}}]}
    answer = await api.call("POST", "/flows", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["details"]["field"] == "children.0.opts"
    assert error["details"]["accepted"] == list(FLOW_OPTS)
    assert "'retries'" in error["message"] and "maxAttempts" in error["message"]


@pytest.mark.parametrize(("body", "message"), [
    (chain(5), "deeper than the limit of 4 levels (at root.children[0].children[0]."
               "children[0].children[0])"),
    (wide(41), "more than the limit of 40 jobs"),
])
async def test_limits_refuse_the_whole_tree(api: Api, body: dict[str, Any], message: str) -> None:
    before = await row_counts(api.db)
    answer = await api.call("POST", "/flows", json=body)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]["message"]
    assert await row_counts(api.db) == before
    # right at the limits is fine
    await api.ok("POST", "/flows", status=201, json=chain(4))
    await api.ok("POST", "/flows", status=201, json=wide(40))


async def test_opts_reach_the_jobs(api: Api) -> None:
    body = {"flowname": "opts", "name": "root", "queueName": "q", "opts": {"priority": 7},
            "children": [{"name": "c", "queueName": "q2", "opts": {
                "maxAttempts": 3, "delaySeconds": 3600, "phases": ["load", "index"]}},
                {"name": "d", "queueName": "q2", "opts": {"runAt": "2999-01-01T00:00:00"}}]}
    f = await create(api, body)
    tree = (await api.ok("GET", f"/flows/{f['flowId']}", params={"include": "jobs"}))["jobs"]
    assert tree["priority"] == 7
    c, d = tree["children"]
    assert (c["maxAttempts"], c["step"], [p["name"] for p in c["phases"]]) == (
        3, "delayed", ["load", "index"])
    assert (d["runAt"], d["step"], d["maxAttempts"]) == (
        "2999-01-01T00:00:00.000000Z", "delayed", 1)
    assert await claim(api, "q2") == []  # neither may start yet


async def test_another_tenants_flow_is_not_found_on_every_route(api: Api) -> None:
    f = await create(api)
    fid, root = f["flowId"], f["rootJobId"]
    [child, *_] = await claim(api, "extract", limit=1)
    for method, path, body in [
        ("GET", f"/flows/{fid}", None),
        ("GET", f"/flows/{fid}?include=jobs", None),
        ("PUT", f"/flows/{fid}/jobs/{child['jobId']}", {"status": "completed"}),
        ("PUT", f"/flows/{fid}/jobs/{root}", {"status": "cancelled"}),
        ("POST", f"/flows/{fid}/cancel", None),
    ]:
        answer = await api.call(method, path, "t2", json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
    assert (await api.ok("GET", "/flows", "t2"))["items"] == []
    assert [f["flowId"] for f in (await api.ok("GET", "/flows", "admin"))["items"]] == [fid]
    assert (await api.ok("GET", "/flows", "t2", params={"flowname": "ingest-pdf"}))[
        "items"] == []
    # nothing moved; the admin key sees it
    mine = await api.ok("GET", f"/flows/{fid}", "admin")
    assert (mine["status"], mine["progress"]["running"]) == ("running", 1)
    unknown = await api.call("GET", "/flows/not-a-uuid")
    assert unknown.status_code == 404
    anonymous = await api.client.get(f"/flows/{fid}")
    assert anonymous.status_code == 401


async def test_put_a_job_of_another_flow_is_not_found(api: Api) -> None:
    first, second = await create(api), await create(api)
    answer = await api.call("PUT", f"/flows/{first['flowId']}/jobs/{second['rootJobId']}",
                            json={"status": "cancelled"})
    assert answer.status_code == 404
    assert "not found in flow" in answer.json()["error"]["message"]
    plain = await api.ok("POST", "/jobs", status=201, json={"queueName": "q", "name": "n"})
    answer = await api.call("PUT", f"/flows/{first['flowId']}/jobs/{plain['jobId']}",
                            json={"status": "running"})
    assert answer.status_code == 404
    bad = await api.call("PUT", f"/flows/{first['flowId']}/jobs/{first['rootJobId']}",
                         json={"status": "exploded"})
    assert bad.status_code == 422 and "pending" in bad.json()["error"]["message"]


async def test_list_filters_by_flowname_and_status_and_pages(api: Api) -> None:
    one = {"name": "r", "queueName": "solo"}
    made = [await create(api, {"flowname": name, **one}) for name in ("a", "b", "a", "a")]
    [job] = await claim(api, "solo", limit=1)  # the oldest: made[0]
    await api.ok("PATCH", f"/jobs/{job['jobId']}", json={"status": "completed"})
    page = await api.ok("GET", "/flows", params={"flowname": "a", "limit": 2})
    FlowPage.model_validate(page)
    assert [f["flowId"] for f in page["items"]] == [made[3]["flowId"], made[2]["flowId"]]
    rest = await api.ok("GET", "/flows", params={"flowname": "a", "limit": 2,
                                                  "cursor": page["nextCursor"]})
    assert ([f["flowId"] for f in rest["items"]], rest["nextCursor"]) == (
        [made[0]["flowId"]], None)
    done = await api.call("GET", "/flows", params={"status": "finished"})
    assert [f["flowId"] for f in done.json()["items"]] == [made[0]["flowId"]]
    assert 'canonical="completed"' in done.headers["deprecation"]
    pending = await api.ok("GET", "/flows", params={"status": "pending"})
    assert len(pending["items"]) == 3
    bad = await api.call("GET", "/flows", params={"status": "stuck"})
    assert bad.status_code == 422
    too_many = await api.call("GET", "/flows", params={"limit": 100_000})
    assert too_many.status_code == 422


async def test_bullmq_attempts_and_delay_in_a_flow_nodes_opts(api: Api) -> None:
    body = {"flowname": "bq", "name": "root", "queueName": "q", "opts": {"attempts": 5},
            "children": [{"name": "c", "queueName": "q", "opts": {"delay": 3_600_000}}]}
    f = await create(api, body)
    tree = (await api.ok("GET", f"/flows/{f['flowId']}", params={"include": "jobs"}))["jobs"]
    assert tree["maxAttempts"] == 5
    assert tree["children"][0]["step"] == "delayed"


@pytest.mark.parametrize(("opts", "field", "words"), [
    ({"removeOnFail": True}, "children.0.opts", "'removeOnFail' are not supported"),
    ({"jobId": "x"}, "children.0.opts", "'jobId' are not supported"),
    ({"attempts": 2, "maxAttempts": 3}, "children[0].opts.attempts", "contradicts"),
])
async def test_bullmq_opts_a_flow_cannot_take_are_refused_by_name(
    api: Api, opts: dict[str, Any], field: str, words: str
) -> None:
    before = await row_counts(api.db)
    body = {**SCENARIO, "children": [{"name": "x", "queueName": "q", "opts": opts}]}
    answer = await api.call("POST", "/flows", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["details"]["field"] == field
    assert words in error["message"]
    assert await row_counts(api.db) == before


async def test_a_flow_read_counts_its_jobs_per_step(api: Api) -> None:
    body = {"flowname": "steps", "name": "root", "queueName": "q",
            "children": [{"name": "later", "queueName": "q", "opts": {"delaySeconds": 3600}},
                         {"name": "now", "queueName": "q"}]}
    f = await create(api, body)
    flow = await api.ok("GET", f"/flows/{f['flowId']}")
    assert flow["progress"]["steps"] == {
        "delayed": 1, "waitingChildren": 1, "paused": 0, "stuck": 0}
    assert flow["progress"]["pending"] == 3
