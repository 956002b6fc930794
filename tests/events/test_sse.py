"""``GET /events``: Server-Sent Events over a real server, on both backends."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobtrack.settings import Settings
from support.keys import bearer
from support.servers import serving
from support.sse import SseReader


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_per_minute": 1_000_000,
                                       "event_poll_seconds": 0.01,
                                       "sse_keepalive_seconds": 0.3})


@pytest.fixture
async def client(live_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(live_settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        yield c


async def create(client: httpx.AsyncClient, key: str, queue: str = "q") -> dict[str, Any]:
    r = await client.post("/jobs", json={"queueName": queue, "name": "n"}, headers=bearer(key))
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()["job"]
    return job


async def patch(client: httpx.AsyncClient, key: str, job_id: object, **body: object) -> None:
    r = await client.patch(f"/jobs/{job_id}", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text


async def test_stream_frames_and_tenant_isolation(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    async with client.stream("GET", "/events", headers=bearer(keys["a"])) as ra, \
            client.stream("GET", "/events", headers=bearer(keys["b"])) as rb:
        assert ra.status_code == 200
        assert ra.headers["content-type"].startswith("text/event-stream")
        a, b = SseReader(ra), SseReader(rb)
        first, _ = await a.frame()
        assert first["retry"] == "1000"
        job = await create(client, keys["a"])
        await patch(client, keys["a"], job["jobId"], progress=50)
        created, progressed = await a.events(2)
        assert created["type"] == "job.created" and created["data"]["jobId"] == job["jobId"]
        assert progressed["type"] == "job.progress"
        assert progressed["data"]["progress"]["percentage"] == 50
        assert set(created) == {"id", "type", "at", "data"}
        assert created["id"] < progressed["id"]
        assert await b.silent(0.5), "tenant b saw tenant a's events"


async def test_filters_by_job_and_queue(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    one = await create(client, keys["a"], queue="emails")
    two = await create(client, keys["a"], queue="sms")
    by_job = client.stream("GET", "/events", params={"jobId": one["jobId"]},
                           headers=bearer(keys["a"]))
    by_queue = client.stream("GET", "/events", params={"queueName": "sms"},
                             headers=bearer(keys["a"]))
    async with by_job as rj, by_queue as rq:
        j, q = SseReader(rj), SseReader(rq)
        await j.frame()
        await q.frame()
        await patch(client, keys["a"], two["jobId"], progress=10)
        await patch(client, keys["a"], one["jobId"], progress=20)
        [got_job] = await j.events(1)
        [got_queue] = await q.events(1)
        assert got_job["data"]["jobId"] == one["jobId"]
        assert got_queue["data"]["jobId"] == two["jobId"]
        assert await j.silent(0.2) and await q.silent(0.2)


async def test_last_event_id_replays_without_duplicates_or_gaps(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    job = await create(client, keys["a"])
    for pct in range(1, 6):
        await patch(client, keys["a"], job["jobId"], progress=pct)
    await create(client, keys["b"])  # another tenant's event in between: never replayed
    async with client.stream("GET", "/events", headers={**bearer(keys["a"]),
                                                        "Last-Event-ID": "0"}) as r:
        replay = SseReader(r)
        stored = await replay.events(6)
        assert await replay.silent(0.2)
    assert [e["type"] for e in stored] == ["job.created"] + ["job.progress"] * 5
    resume_after = stored[2]["id"]  # the client had seen up to the 2nd progress event

    async def writer() -> None:  # commits race with the replay and the hand-over to live
        for pct in range(6, 11):
            await patch(client, keys["a"], job["jobId"], progress=pct)

    async with client.stream("GET", "/events", params={"lastEventId": resume_after},
                             headers=bearer(keys["a"])) as r:
        resumed = SseReader(r)
        task = asyncio.create_task(writer())
        got = await resumed.events(8)
        await task
        assert await resumed.silent(0.3), "an event came twice"
    assert [e["data"]["progress"]["done"] for e in got] == list(range(3, 11))
    ids = [e["id"] for e in got]
    assert ids == sorted(set(ids)) and ids[0] > resume_after


async def test_keep_alive_comments(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    async with client.stream("GET", "/events", headers=bearer(keys["a"])) as r:
        reader = SseReader(r)
        await reader.frame()
        _, comments = await reader.frame(timeout=2)
        assert comments == ["keep-alive"]


async def test_auth_and_bad_input_are_json_errors(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    r = await client.get("/events")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await client.get("/events", headers={**bearer(keys["a"]), "Last-Event-ID": "x"})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "Last-Event-ID"


async def test_ids_are_checked_and_compared_in_canonical_form(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    r = await client.get("/events", params={"jobId": "nope"}, headers=bearer(keys["a"]))
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "jobId"
    job = await create(client, keys["a"])
    upper = str(job["jobId"]).upper()
    async with client.stream("GET", "/events", params={"jobId": upper},
                             headers={**bearer(keys["a"]), "Last-Event-ID": "0"}) as r:
        reader = SseReader(r)
        [created] = await reader.events(1)  # replayed from the store
        await patch(client, keys["a"], job["jobId"], progress=5)
        [live] = await reader.events(1)  # matched live, in memory
    assert created["data"]["jobId"] == live["data"]["jobId"] == job["jobId"]
    assert live["type"] == "job.progress"


@pytest.mark.parametrize("ahead", [1000, 10**23])
@pytest.mark.parametrize("where", ["header", "query"])
async def test_a_last_event_id_above_the_newest_stored_event_resumes_from_the_newest(
    client: httpx.AsyncClient, keys: dict[str, str], ahead: int, where: str
) -> None:
    """A client that saw ids of a database since restored from an older backup: its id
    was never handed out here. It resumes from the newest stored event (the stream starts
    with that ``id:``, like a fresh one) and gets what comes next."""
    job = await create(client, keys["a"])
    async with client.stream("GET", "/events", params={"lastEventId": 0},
                             headers=bearer(keys["a"])) as r:
        newest = (await SseReader(r).event())["id"]
    last = newest + ahead
    given = ({"headers": {**bearer(keys["a"]), "Last-Event-ID": str(last)}} if where == "header"
             else {"params": {"lastEventId": last}, "headers": bearer(keys["a"])})
    async with client.stream("GET", "/events", **given) as r:
        assert r.status_code == 200
        reader = SseReader(r)
        first, comments = await reader.frame()
        assert comments == ["connected"] and int(first["id"]) == newest
        await patch(client, keys["a"], job["jobId"], progress=7)
        event = await reader.event()
    assert event["type"] == "job.progress" and event["id"] > newest


async def test_an_event_id_too_long_to_be_one_is_a_422(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    for given in ({"params": {"lastEventId": "9" * 5000}},
                  {"headers": {"Last-Event-ID": "9" * 40}}):
        headers = {**bearer(keys["a"]), **given.get("headers", {})}
        r = await client.get("/events", params=given.get("params"), headers=headers)
        assert r.status_code == 422, r.text
