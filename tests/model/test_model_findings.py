"""What the model-based test (``test_status_model.py``) found, kept as plain examples over
the HTTP API so each stays fixed: the smallest sequence that broke an invariant."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobtrack.domain.status import FlowStatus, JobStatus, PhaseStatus
from jobtrack.settings import Settings
from support.keys import bearer, key_at
from support.servers import api_client

J, P = JobStatus, PhaseStatus


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app (lifespan run) on the test's database, and a client with a fresh key."""
    key = await key_at(db_url, "model-findings")
    async with api_client(Settings(database_url=db_url, rate_limit_per_minute=1_000_000,
                                   webhooks_in_api=False), bearer(key)) as c:
        yield c


async def patch(c: httpx.AsyncClient, job_id: str, **body: Any) -> dict[str, Any]:
    r = await c.patch(f"/jobs/{job_id}", json=body)
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


async def failed_once(c: httpx.AsyncClient) -> str:
    """A job whose first attempt failed with an error: pending again, as attempt 2."""
    r = await c.post("/jobs", json={"queueName": "q", "name": "n", "maxAttempts": 3})
    assert r.status_code == 201, r.text
    job_id: str = r.json()["jobId"]
    await patch(c, job_id, status=J.RUNNING.value)
    job = await patch(c, job_id, status=J.FAILED.value, error={"message": "attempt 1 broke"})
    assert (job["status"], job["attempt"], job["error"]["message"]) == \
        (J.PENDING, 2, "attempt 1 broke")  # the error says why it waits for a retry
    return job_id


async def test_a_started_flow_stays_running_while_its_only_job_waits_for_a_retry(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/flows", json={"flowname": "f", "name": "only", "queueName": "q",
                                          "opts": {"maxAttempts": 2}})
    assert r.status_code == 201, r.text
    flow_id = r.json()["flowId"]
    [job] = (await client.post("/queues/q/claim", json={})).json()["items"]
    assert (await client.get(f"/flows/{flow_id}")).json()["status"] == FlowStatus.RUNNING
    job = await patch(client, job["jobId"], status=J.FAILED.value, error={"message": "x"})
    assert job["status"] == J.PENDING  # an automatic retry
    flow = (await client.get(f"/flows/{flow_id}")).json()
    assert flow["status"] == FlowStatus.RUNNING, "a started flow went back to pending"


async def test_a_completed_job_carries_no_error(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs", json={"queueName": "q", "name": "n"})
    job_id = r.json()["jobId"]
    await patch(client, job_id, status=J.RUNNING.value)
    await patch(client, job_id, error={"message": "a hiccup reported while it ran"})
    job = await patch(client, job_id, status=J.COMPLETED.value)
    assert job["status"] == J.COMPLETED
    assert job["error"] is None


async def test_cancelling_a_waiting_retry_drops_the_earlier_attempts_error(
    client: httpx.AsyncClient,
) -> None:
    job_id = await failed_once(client)
    r = await client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempt"]) == (J.CANCELLED, 2)
    assert r.json()["error"] is None, "attempt 2 was cancelled with attempt 1's error"


async def test_failing_a_waiting_retry_keeps_only_its_own_error(
    client: httpx.AsyncClient,
) -> None:
    job_id = await failed_once(client)
    r = await client.patch(f"/jobs/{job_id}", json={"status": J.FAILED.value})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempt"]) == (J.FAILED, 2)
    assert r.json()["error"] is None, "attempt 2 failed with attempt 1's error"


async def test_a_phased_jobs_percentage_is_not_truncated(client: httpx.AsyncClient) -> None:
    r = await client.post("/jobs", json={"queueName": "q", "name": "n",
                                         "phases": ["load", "chunk", "index"]})
    job_id = r.json()["jobId"]
    await patch(client, job_id, status=J.RUNNING.value)
    await patch(client, job_id, phase={"name": "load", "status": P.COMPLETED.value})
    await patch(client, job_id, phase={"name": "chunk", "status": P.COMPLETED.value})
    job = await patch(client, job_id, phase={"name": "index", "progress": {"done": 3,
                                                                          "total": 10}})
    # by count (not every total is known): 1 + 1 + 3/10 of 3 phases
    assert job["progress"]["done"] == 2.3 and job["progress"]["total"] == 3
    assert job["progress"]["percentage"] == 76.67  # 2.3 * 100 is 229.999...: not 76.33
