"""Operations: ``GET /queues``, health and readiness, 503 when the database is down, and
the envelope for unknown routes, wrong methods and unexpected errors."""

import asyncio

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url
from starlette.types import Receive, Scope, Send

from jobtrack.api.middleware import ApiGuard
from jobtrack.domain.status import JobStatus
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import Api, assert_error, running
from support.keys import make_keys


async def test_queue_overview_counts_stuck_and_oldest_wait(
    settings: Settings, keys: dict[str, str],
) -> None:
    # long enough that a loaded machine does not make "run" stuck before the first look
    quick = settings.model_copy(update={"stuck_after_seconds": 3.0,
                                        "rate_limit_per_minute": 100_000})
    async with running(quick, keys) as api:
        assert (await api.client.get("/queues", headers=api.auth())).json() == []
        for name in ("run", "done", "fail", "cancel", "wait", "wait"):
            await api.create(queueName="work", name=name)
        await api.create(queueName="work", name="later", delaySeconds=3600)
        await api.create(queueName="other")
        for name, report in (("run", None), ("done", "completed"), ("fail", "failed")):
            [job] = await api.claim(queue="work", names=[name])
            if report:
                await api.client.patch(f"/jobs/{job['jobId']}", json={"status": report},
                                       headers=api.auth())
        listed = (await api.client.get("/jobs", params={"name": "cancel"},
                                       headers=api.auth())).json()["items"]
        await api.client.post(f"/jobs/{listed[0]['jobId']}/cancel", headers=api.auth())
        fresh = {q["queueName"]: q for q in
                 (await api.client.get("/queues", headers=api.auth())).json()}
        assert fresh["work"]["stuck"] == 0
        await asyncio.sleep(3.1)
        queues = (await api.client.get("/queues", headers=api.auth())).json()
    assert [q["queueName"] for q in queues] == ["other", "work"]
    work = queues[1]
    assert work["counts"] == {JobStatus.PENDING.value: 3, JobStatus.RUNNING.value: 1,
                              JobStatus.COMPLETED.value: 1, JobStatus.FAILED.value: 1,
                              JobStatus.CANCELLED.value: 1}
    assert work["stuck"] == 1
    assert work["oldestPendingAge"] >= 3.1  # the two runnable jobs; not the delayed one
    assert queues[0]["counts"][JobStatus.PENDING.value] == 1


async def test_unknown_routes_and_methods_answer_the_envelope(api: Api) -> None:
    err = assert_error(await api.client.get("/nope", headers=api.auth()), 404, "not_found")
    assert "/nope" in err["message"]
    r = await api.client.delete("/jobs", headers=api.auth())
    err = assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, POST" and "GET, POST" in err["message"]
    r = await api.client.put("/jobs/x/cancel", headers=api.auth())
    assert_error(r, 405)
    html = await api.client.get("/nope", headers={"Accept": "text/html"})
    assert html.headers["content-type"] == "application/json"


def _admin(server: str) -> str:
    return make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_database_outage_is_503_then_recovers_by_itself(
    pg_url: str, pg_server_url: str,
) -> None:
    db = Database(pg_url, pool_size=1)
    keys = await make_keys(db)
    await db.dispose()
    name = make_url(pg_url).database
    config = Settings(database_url=pg_url, pool_size=2, rate_limit_per_minute=100_000)
    async with running(config, keys) as api:
        assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200
        with psycopg.connect(_admin(pg_server_url), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            try:
                for method, path in (("GET", "/jobs"), ("GET", "/readyz"), ("POST", "/jobs"),
                                     ("GET", "/queues"), ("GET", "/jobs")):
                    r = await api.client.request(method, path, headers=api.auth(),
                                                 json={"queueName": "q", "name": "n"})
                    assert_error(r, 503, "database_unavailable")
                    assert r.headers["retry-after"] == "1"
                assert (await api.client.get("/healthz")).status_code == 200
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        codes = []
        for _ in range(5):  # the pool reconnects on its own
            codes.append((await api.client.get("/jobs", headers=api.auth())).status_code)
            if codes[-1] == 200:
                break
        assert codes[-1] == 200 and set(codes) <= {200, 503}
        assert (await api.client.get("/readyz")).status_code == 200


async def _boom(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("secret internals: password=hunter2")


async def test_unexpected_errors_are_a_500_envelope_without_internals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guarded = ApiGuard(_boom, max_body_bytes=1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded),
                                 base_url="http://t") as client:
        r = await client.post("/anything", json={"a": 1})
    err = assert_error(r, 500, "internal_error")
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    reference = err["details"]["reference"]
    assert any(reference in rec.getMessage() for rec in caplog.records)
