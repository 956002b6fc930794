"""BullMQ job options (``opts``) on ``POST /jobs``: mapped onto jobtrack's fields through
the one job specification, other BullMQ options and unknown keys refused by name."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobtrack.store.engine import Database
from support.api import Api, assert_error
from support.store import count_rows


async def post(api: Api, **fields: Any) -> Any:
    return await api.client.post("/jobs", headers=api.auth(),
                                 json={"queueName": "bq", "name": "n", **fields})


async def test_opts_map_attempts_delay_and_job_id(api: Api) -> None:
    before = datetime.now(UTC)
    r = await post(api, opts={"attempts": 4, "delay": 60_000, "jobId": "order-7"})
    assert r.status_code == 201, r.text
    job = r.json()["job"]
    assert job["maxAttempts"] == 4
    run_at = datetime.fromisoformat(job["runAt"])
    assert before + timedelta(seconds=59) <= run_at <= datetime.now(UTC) + timedelta(seconds=61)
    again = await post(api, opts={"jobId": "order-7"})
    assert again.status_code == 200 and again.json()["jobId"] == job["jobId"]
    same = await post(api, idempotencyKey="order-7")
    assert same.status_code == 200 and same.json()["jobId"] == job["jobId"]


async def test_bullmq_priority_one_is_claimed_before_larger_numbers(api: Api) -> None:
    ids = {}
    for p in (10, 1, 5, 0):
        r = await post(api, opts={"priority": p})
        assert r.status_code == 201, r.text
        assert r.json()["job"]["priority"] == -p
        ids[p] = r.json()["jobId"]
    order = []
    for _ in range(4):
        r = await api.client.post("/queues/bq/claim", headers=api.auth(), json={"limit": 1})
        assert r.status_code == 200, r.text
        order.extend(j["jobId"] for j in r.json()["items"])
    assert order == [ids[0], ids[1], ids[5], ids[10]]


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"opts": {"removeOnComplete": True}}, "opts", "'removeOnComplete' are not supported"),
    ({"opts": {"lifo": True}}, "opts", "'lifo' are not supported"),
    ({"opts": {"repeat": {"every": 1000}}}, "opts", "'repeat' are not supported"),
    ({"opts": {"colour": "red"}}, "opts.colour", "Extra inputs"),
    ({"opts": {"backoff": {"type": "custom"}}}, "opts.backoff.type", "fixed"),
    ({"opts": {"attempts": 0}}, "opts.attempts", "greater than or equal to 1"),
    ({"opts": {"attempts": "3"}}, "opts.attempts", "integer"),
    ({"opts": {"priority": -1}}, "opts.priority", "greater than or equal to 0"),
    ({"opts": {"delay": 1.5}}, "opts.delay", "integer"),
    ({"opts": {"jobId": " "}}, "opts.jobId", "blank"),
    ({"maxAttempts": 2, "opts": {"attempts": 3}}, "opts.attempts", "contradicts"),
    ({"priority": 5, "opts": {"priority": 5}}, "opts.priority", "contradicts"),
    ({"idempotencyKey": "a", "opts": {"jobId": "b"}}, "opts.jobId", "contradicts"),
    ({"delaySeconds": 2, "opts": {"delay": 3000}}, "opts.delay", "contradicts"),
    ({"runAt": "2030-01-01T00:00:00Z", "opts": {"delay": 3000}}, "opts.delay", "runAt"),
])
async def test_unsupported_unknown_or_contradicting_opts_are_a_422(
    api: Api, db: Database, fields: dict[str, Any], field: str, words: str
) -> None:
    error = assert_error(await post(api, **fields), 422)
    assert error["details"]["field"] == field
    assert words in error["message"]
    assert await count_rows(db, "jobs") == 0


async def test_agreeing_native_fields_and_opts_are_taken(api: Api) -> None:
    r = await post(api, maxAttempts=3, priority=-2, delaySeconds=2,
                   opts={"attempts": 3, "priority": 2, "delay": 2000})
    assert r.status_code == 201, r.text
    assert (r.json()["job"]["maxAttempts"], r.json()["job"]["priority"]) == (3, -2)
