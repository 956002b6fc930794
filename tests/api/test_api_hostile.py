"""Hostile input (docs/targets.md R8): oversized and streamed bodies, deep JSON, huge and odd
strings, SQL-looking text, bad enums, ids, cursors and types. Every refusal is a 4xx in
the error envelope with a clear message, and nothing is stored."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobtrack.api.jsonguard import body_depth_limit
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import Api, assert_error, running
from support.store import count_rows

JOB = {"queueName": "q", "name": "n"}


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


async def chunks(total: int, size: int = 16_384) -> AsyncIterator[bytes]:
    yield b'{"queueName": "q", "name": "n", "data": {"blob": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}}'


async def post_json(api: Api, url: str, body: Any) -> httpx.Response:
    """POST ``body`` as ASCII JSON (escapes let it carry unpaired surrogates)."""
    return await api.client.post(url, content=json.dumps(body).encode(),
                                 headers={**api.auth(), "Content-Type": "application/json"})


async def assert_nothing_stored(db: Database) -> None:
    assert await count_rows(db, "jobs") == 0
    assert await count_rows(db, "job_phases") == 0
    assert await count_rows(db, "events") == 0


async def test_oversized_bodies_are_413_declared_or_streamed(
    settings: Settings, db: Database, keys: dict[str, str],
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 64 * 1024,
                                        "rate_limit_per_minute": 10_000})
    async with running(small, keys) as api:
        declared = await api.client.post("/jobs", headers=api.auth(), json={
            **JOB, "data": {"blob": "x" * 100_000}})
        err = assert_error(declared, 413, "payload_too_large")
        assert err["details"] == {"maxBytes": 64 * 1024}
        streamed = await api.client.post(
            "/jobs", content=chunks(200_000),
            headers={**api.auth(), "Content-Type": "application/json"})
        assert "content-length" not in streamed.request.headers  # chunked
        assert_error(streamed, 413, "payload_too_large")
        lying = await api.client.post(  # a small Content-Length does not let more through
            "/jobs", content=b"{" + b" " * 70_000 + b"}",
            headers={**api.auth(), "Content-Type": "application/json"})
        assert lying.status_code in (413, 422)
        await assert_nothing_stored(db)
        ok = await api.client.post("/jobs", content=chunks(20_000),
                                   headers={**api.auth(), "Content-Type": "application/json"})
        assert ok.status_code == 201  # a streamed body within the limit is fine
        assert len(ok.json()["job"]["data"]["blob"]) >= 20_000


@pytest.mark.parametrize("depth", [70, 1_000, 100_000])
async def test_deep_json_is_422_before_parsing(api: Api, db: Database, depth: int) -> None:
    data = '{"k": ' * (depth // 2) + "[" * (depth - depth // 2) + "1" \
        + "]" * (depth - depth // 2) + "}" * (depth // 2)
    body = f'{{"queueName": "q", "name": "n", "data": {data}}}'.encode()
    r = await api.client.post("/jobs", content=body,
                              headers={**api.auth(), "Content-Type": "application/json"})
    err = assert_error(r, 422, "validation_error")
    # a value nests at most 64 levels; a body (a flow's tree) 64 more than twice the flow
    # depth limit, checked before parsing
    limit = 64 if depth < body_depth_limit(32) else body_depth_limit(32)
    assert f"deeper than {limit} levels" in err["message"]
    await assert_nothing_stored(db)


async def test_brackets_inside_strings_do_not_count_as_depth(api: Api) -> None:
    tricky = {"s": "[" * 500 + '\\"{' * 100, "t": ["]" * 50]}
    job = await api.create(data=tricky)
    assert job["data"] == tricky
    assert (await api.create(data={"deep": nested(40)}))["data"] == {"deep": nested(40)}


BAD_JOBS: list[tuple[dict[str, Any], str]] = [
    ({"name": "n"}, "queueName"),
    ({**JOB, "queueName": ""}, "queueName"),
    ({**JOB, "queueName": "   "}, "queueName"),
    ({**JOB, "queueName": 5}, "queueName"),
    ({**JOB, "name": "x" * 201}, "name"),
    ({**JOB, "name": "y" * 100_000}, "name"),
    ({**JOB, "name": "nul\x00byte"}, "name"),
    ({**JOB, "name": "half \ud800 surrogate"}, "name"),
    ({**JOB, "data": []}, "data"),
    ({**JOB, "data": "text"}, "data"),
    ({**JOB, "data": {"big": 2**70}}, "data"),
    ({**JOB, "data": {"nul": "a\x00b"}}, "data"),
    ({**JOB, "data": {"\udfff": 1}}, "data"),
    ({**JOB, "phases": "loading"}, "phases"),
    ({**JOB, "phases": [""]}, "phases.0"),
    ({**JOB, "phases": ["p"] * 101}, "phases"),
    ({**JOB, "priority": "high"}, "priority"),
    ({**JOB, "priority": True}, "priority"),
    ({**JOB, "priority": 10**12}, "priority"),
    ({**JOB, "maxAttempts": 0}, "maxAttempts"),
    ({**JOB, "maxAttempts": 1.5}, "maxAttempts"),
    ({**JOB, "runAt": "tomorrow"}, "runAt"),
    ({**JOB, "runAt": 0}, "runAt"),  # a date-time is a string, not a Unix time
    ({**JOB, "runAt": "1700000000"}, "runAt"),
    ({**JOB, "runAt": "0001-01-01T00:00:00+01:00"}, "runAt"),
    ({**JOB, "delaySeconds": -1}, "delaySeconds"),
    ({**JOB, "delaySeconds": 1e300}, "delaySeconds"),
    ({**JOB, "idempotencyKey": "k" * 201}, "idempotencyKey"),
    ({**JOB, "status": "running"}, "status"),
]


async def test_bad_fields_are_422_naming_the_field(api: Api, db: Database) -> None:
    for body, field in BAD_JOBS:
        r = await post_json(api, "/jobs", body)
        err = assert_error(r, 422, "validation_error")
        assert err["details"]["field"] == field, (body, err)
        assert field in err["message"]
    await assert_nothing_stored(db)


async def test_bodies_that_are_not_json_objects(api: Api, db: Database) -> None:
    for content, ctype in ((b"{not json", "application/json"), (b"[1, 2]", "application/json"),
                           (b"", "application/json"), (b"queueName=q&name=n", None),
                           (b'{"queueName": "q", "name": "n"}', None),
                           (b'{"queueName": "q", "name": "n", "data": {"x": NaN}}',
                            "application/json"),
                           (b'{"queueName": "q", "name": "n", "data": {"x": 1e999}}',
                            "application/json"),
                           (b'{"queueName": "q", "name": "n"}\xff', "application/json")):
        headers = api.auth() | ({"Content-Type": ctype} if ctype else {})
        r = await api.client.post("/jobs", content=content, headers=headers)
        err = assert_error(r, 422)
        if ctype is None and content.startswith(b"{"):
            assert "Content-Type: application/json" in err["message"]
    await assert_nothing_stored(db)


async def test_unicode_and_sql_looking_text_is_stored_verbatim(api: Api) -> None:
    texts = ["队列-ü-🚀", "x'; DROP TABLE jobs; --", 'a"b\\c', "%_ LIKE '%'", "\u202eevil",
             "tab\tand\nnewline"]
    for text in texts:
        job = await api.create(queueName=text, name=text, data={text: text},
                               phases=[text], idempotencyKey=text)
        got = (await api.client.get(f"/jobs/{job['jobId']}", headers=api.auth())).json()
        assert (got["queueName"], got["name"], got["data"], got["phases"][0]["name"]) == (
            text, text, {text: text}, text)
        listed = (await api.client.get("/jobs", params={"queueName": text, "name": text},
                                       headers=api.auth())).json()
        assert [j["jobId"] for j in listed["items"]] == [job["jobId"]]
    queues = (await api.client.get("/queues", headers=api.auth())).json()
    assert sorted(q["queueName"] for q in queues) == sorted(texts)
    assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200  # table ok


async def test_bad_ids_cursors_and_query_values(api: Api, db: Database) -> None:
    for job_id in ("abc", "00000000-0000-0000-0000-00000000000g", "'; --", "%00"):
        assert_error(await api.client.get(f"/jobs/{job_id}", headers=api.auth()), 404)
        assert_error(await api.client.patch(f"/jobs/{job_id}", json={"progress": 1},
                                            headers=api.auth()), 404)
        assert_error(await api.client.post(f"/jobs/{job_id}/cancel", headers=api.auth()), 404)
    for params in ({"cursor": "zzz"}, {"cursor": "x" * 100}, {"queueName": "a\x00b"},
                   {"status": "nope"}, {"limit": "-3"},
                   {"flowId": "y" * 65}):
        assert_error(await api.client.get("/jobs", params=params, headers=api.auth()), 422)
    odd = await api.client.get("/jobs?name=%ED%A0%80%FF", headers=api.auth())  # not UTF-8
    assert odd.status_code == 200 and odd.json()["items"] == []
    r = await api.client.get("/jobs", params={"flowId": "not-an-id"}, headers=api.auth())
    assert r.json() == {"items": [], "nextCursor": None}
    assert_error(await api.client.post("/queues/a%00b/claim", headers=api.auth()), 422)
    assert_error(await api.client.post("/queues/" + "q" * 201 + "/claim", headers=api.auth()),
                 422)
    await assert_nothing_stored(db)


async def test_bad_patch_bodies_change_nothing(api: Api, db: Database) -> None:
    job = await api.create(phases=["one"])
    url = f"/jobs/{job['jobId']}"
    events = await count_rows(db, "events")
    for body in ({"status": "RUNNING!"}, {"progress": 1e300}, {"progress": {"done": -1}},
                 {"phase": {"name": "one", "status": "weird"}}, {"phase": "one"},
                 {"step": ""}, {"result": {"n": 2**64}}, {"stats": [1]},
                 {"error": {"message": "x", "stack": "y"}}, {"error": {"type": "only"}},
                 {"status": None, "extra": 1}):
        r = await api.client.patch(url, json=body, headers=api.auth())
        assert_error(r, 422)
    after = (await api.client.get(url, headers=api.auth())).json()
    assert after == job
    assert await count_rows(db, "events") == events
