"""The Python client against a real server: jobs, errors, and ``watch`` resuming with
``Last-Event-ID`` after the server went away."""

import asyncio
from typing import Any

import pytest

from jobtrack.client import ApiError, Client
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.keys import make_keys
from support.servers import serving
from support.store import progress


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_per_minute": 1_000_000,
                                       "event_poll_seconds": 0.01})


async def test_jobs_and_errors(live_settings: Settings, db: Database) -> None:
    keys = await make_keys(db)
    async with serving(live_settings) as url, Client(url, keys["a"]) as jt:
        created = await jt.create_job("emails", "send", data={"to": "x"}, phases=["a", "b"])
        job = await jt.get_job(created["jobId"])
        assert job["status"] == "pending" and job["data"] == {"to": "x"}
        assert (await jt.update_job(job["jobId"], progress=30))["progress"]["done"] == 30
        with pytest.raises(ApiError) as missing:
            await jt.get_job("00000000-0000-7000-8000-000000000000")
        assert missing.value.status == 404 and missing.value.code == "not_found"
        async with Client(url, "jt_wrong") as bad:
            with pytest.raises(ApiError) as refused:
                await anext(aiter(bad.watch()))
        assert refused.value.status == 401


async def test_watch_resumes_after_the_server_went_away(
    live_settings: Settings, db: Database
) -> None:
    keys = await make_keys(db)
    received: list[dict[str, Any]] = []
    got_one = asyncio.Event()
    async with serving(live_settings) as url:
        port = int(url.rsplit(":", 1)[1])
        jt = Client(url, keys["a"], reconnect_delay=0.05)
        job_id = (await jt.create_job("q", "n"))["jobId"]

        async def watcher() -> None:
            async for event in jt.watch(job_id=job_id):
                if event["type"] == "job.progress":  # (job.created may come first)
                    received.append(event)
                    got_one.set()

        task = asyncio.create_task(watcher())
        await asyncio.sleep(0.3)  # the stream is open (its first frame carries its position)
        await progress(db, job_id, 1)
        await asyncio.wait_for(got_one.wait(), 5)
    # the server is gone: these commits happen while the client is disconnected
    await progress(db, job_id, 2)
    await progress(db, job_id, 3)
    async with serving(live_settings, port=port):
        await progress(db, job_id, 4)
        async with asyncio.timeout(10):
            while len(received) < 4:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await jt.aclose()
    assert [e["data"]["progress"]["done"] for e in received] == [1, 2, 3, 4]
    ids = [e["id"] for e in received]
    assert ids == sorted(set(ids))
