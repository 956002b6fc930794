"""``GET /metrics``: who may read it, and what it says (through the ASGI app, on a real
database): jobs by queue and status from the database, stuck jobs, HTTP requests by route
template, live subscribers and the webhook loops' counters."""

import asyncio

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from jobtrack.api.state import state_of
from jobtrack.domain.status import JobStatus
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import Api, assert_error, running
from support.keys import make_keys

TOKEN = "prometheus-scrape-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text answer, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


async def scrape(api: Api) -> str:
    r = await api.client.get("/metrics", headers=api.auth("admin"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


async def test_metrics_need_an_admin_key_or_the_metrics_token(
    api_settings: Settings, keys: dict[str, str]
) -> None:
    async with running(api_settings, keys) as api:  # no token configured
        assert_error(await api.client.get("/metrics"), 401, "unauthorized")
        assert_error(await api.client.get("/metrics", headers=api.auth("a")), 403, "forbidden")
        assert_error(await api.client.get("/metrics", headers={
            "Authorization": f"Bearer {TOKEN}"}), 401, "unauthorized")
        admin = await api.client.get("/metrics", headers=api.auth("admin"))
        assert admin.status_code == 200 and "jobtrack_database_up 1.0" in admin.text
        assert admin.headers["x-ratelimit-limit"]  # an admin key is charged like any call
    with_token = api_settings.model_copy(update={"metrics_token": TOKEN})
    async with running(with_token, keys) as api:
        r = await api.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and "jobtrack_jobs" in r.text
        assert "x-ratelimit-limit" not in r.headers  # the token is not a key
        assert (await api.client.get("/metrics", headers=api.auth("admin"))).status_code == 200
        assert_error(await api.client.get("/metrics", headers={
            "Authorization": f"Bearer {TOKEN}x"}), 401)
        assert_error(await api.client.get("/metrics", headers=api.auth("b")), 403)
    doc = api.app.openapi()["paths"]["/metrics"]["get"]
    assert {"401", "403"} <= set(doc["responses"])


async def test_job_gauges_come_from_the_database(
    api_settings: Settings, keys: dict[str, str]
) -> None:
    quick = api_settings.model_copy(update={"stuck_after_seconds": 0.2})
    async with running(quick, keys) as api:
        for name in ("run", "done", "fail", "wait"):
            await api.create(queueName="work", name=name)
        await api.create("b", queueName="work", name="other-tenant")
        await api.create("b", queueName="mail")
        for name, report in (("run", None), ("done", JobStatus.COMPLETED),
                             ("fail", JobStatus.FAILED)):
            [job] = await api.claim(queue="work", names=[name])
            if report is not None:
                r = await api.client.patch(f"/jobs/{job['jobId']}",
                                           json={"status": report.value}, headers=api.auth())
                assert r.status_code == 200, r.text
        await asyncio.sleep(0.3)
        text = await scrape(api)
    # every tenant's jobs, by queue and status, zeros included
    assert value(text, "jobtrack_jobs", queue="work", status="pending") == 2
    assert value(text, "jobtrack_jobs", queue="work", status="running") == 1
    assert value(text, "jobtrack_jobs", queue="work", status="completed") == 1
    assert value(text, "jobtrack_jobs", queue="work", status="failed") == 1
    assert value(text, "jobtrack_jobs", queue="work", status="cancelled") == 0
    assert value(text, "jobtrack_jobs", queue="mail", status="pending") == 1
    assert value(text, "jobtrack_jobs_stuck", queue="work") == 1
    assert value(text, "jobtrack_jobs_stuck", queue="mail") == 0
    waited = value(text, "jobtrack_queue_oldest_pending_age_seconds", queue="work")
    assert waited is not None and waited >= 0.3
    assert value(text, "jobtrack_database_up") == 1


async def test_http_requests_are_counted_by_route_template(api: Api) -> None:
    job = await api.create()
    for _ in range(3):
        assert (await api.client.get(f"/jobs/{job['jobId']}",
                                     headers=api.auth())).status_code == 200
    assert (await api.client.get("/jobs/01a209ed-0000-7000-8000-000000000000",
                                 headers=api.auth())).status_code == 404
    assert (await api.client.get("/no/such/path/123", headers=api.auth())).status_code == 404
    assert (await api.client.get("/jobs/x")).status_code == 401
    r = await api.client.request("BREW", "/jobs", headers=api.auth())
    assert r.status_code == 405
    text = await scrape(api)
    count = "jobtrack_http_requests_total"
    assert value(text, count, method="POST", route="/jobs", status="201") == 1
    assert value(text, count, method="GET", route="/jobs/{jobId}", status="200") == 3
    assert value(text, count, method="GET", route="/jobs/{jobId}", status="404") == 1
    assert value(text, count, method="GET", route="/jobs/{jobId}", status="401") == 1
    assert value(text, count, method="GET", route="unmatched", status="404") == 1
    assert value(text, count, method="other", route="/jobs", status="405") == 1
    assert job["jobId"] not in text and "/no/such/path" not in text  # bounded labels
    assert value(text, "jobtrack_http_request_duration_seconds_count",
                 method="GET", route="/jobs/{jobId}") == 5
    assert value(text, "jobtrack_http_request_duration_seconds_bucket",
                 method="GET", route="/jobs/{jobId}", le="+Inf") == 5
    # the scrape itself is counted by the next one
    again = await scrape(api)
    assert value(again, count, method="GET", route="/metrics", status="200") == 1


async def test_live_subscribers_and_webhook_loops_are_reported(api: Api) -> None:
    text = await scrape(api)
    assert value(text, "jobtrack_event_subscribers") == 0
    assert value(text, "jobtrack_events_sent_total") == 0
    hub = state_of(api.app).hub
    subs = [hub.subscribe("tenant-a"), hub.subscribe(None)]
    job = await api.create()
    for sub in subs:
        async with asyncio.timeout(5):
            assert (await sub.get()).job_id == job["jobId"]
    text = await scrape(api)
    assert value(text, "jobtrack_event_subscribers") == 2
    assert value(text, "jobtrack_events_sent_total") == 2
    assert value(text, "jobtrack_event_subscribers_dropped_total") == 0
    for sub in subs:
        sub.close("done")
    text = await scrape(api)
    assert value(text, "jobtrack_event_subscribers") == 0
    # webhooks_in_api is on by default: the loops' counters are there
    assert value(text, "jobtrack_webhook_attempts_total", outcome="delivered") == 0
    assert value(text, "jobtrack_webhook_deliveries_stored_total") == 0


async def test_job_transitions_and_run_times_are_counted_from_the_event_log(
    api: Api,
) -> None:
    done = await api.create(queueName="work", name="done")
    await api.create("b", queueName="work", name="fail")
    await api.create(queueName="mail")
    [claimed] = await api.claim(queue="work", names=["done"])
    await asyncio.sleep(0.2)
    r = await api.client.patch(f"/jobs/{done['jobId']}", json={"status": "completed"},
                               headers=api.auth())
    assert r.status_code == 200, r.text
    [failing] = await api.claim("b", queue="work", names=["fail"])
    r = await api.client.patch(f"/jobs/{failing['jobId']}", json={
        "status": "failed", "error": {"message": "no"}}, headers=api.auth("b"))
    assert r.status_code == 200, r.text

    name = "jobtrack_job_transitions_total"
    async with asyncio.timeout(10):  # the hub reads the log on its own schedule
        while True:
            text = await scrape(api)
            if value(text, name, queue="work", **{"from": "running", "to": "failed"}):
                break
            await asyncio.sleep(0.05)
    assert value(text, name, queue="work", **{"from": "", "to": "pending"}) == 2
    assert value(text, name, queue="mail", **{"from": "", "to": "pending"}) == 1
    assert value(text, name, queue="work", **{"from": "pending", "to": "running"}) == 2
    assert value(text, name, queue="work", **{"from": "running", "to": "completed"}) == 1
    duration = "jobtrack_job_duration_seconds"
    assert value(text, f"{duration}_count", queue="work", status="completed") == 1
    took = value(text, f"{duration}_sum", queue="work", status="completed")
    assert took is not None and 0.2 <= took < 10
    assert value(text, f"{duration}_count", queue="work", status="failed") == 1
    # the metrics' own subscription is not counted as a client's
    assert value(text, "jobtrack_event_subscribers") == 0
    assert value(text, "jobtrack_events_sent_total") == 0
    assert claimed["jobId"] == done["jobId"]


async def test_without_the_webhook_loops_their_counters_are_absent(
    api_settings: Settings, keys: dict[str, str]
) -> None:
    off = api_settings.model_copy(update={"webhooks_in_api": False})
    async with running(off, keys) as api:
        text = await scrape(api)
    assert "jobtrack_webhook_attempts" not in text and "jobtrack_event_subscribers" in text


async def test_a_database_outage_is_reported_not_a_failed_scrape(
    pg_url: str, pg_server_url: str
) -> None:
    db = Database(pg_url, pool_size=1)
    keys = await make_keys(db)
    await db.dispose()
    name = make_url(pg_url).database
    config = Settings(database_url=pg_url, pool_size=2, metrics_token=TOKEN)
    token = {"Authorization": f"Bearer {TOKEN}"}
    async with running(config, keys) as api:
        await api.create()
        admin_url = make_url(pg_server_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            try:
                r = await api.client.get("/metrics", headers=token)
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert r.status_code == 200, r.text
        assert value(r.text, "jobtrack_database_up") == 0
        assert "jobtrack_jobs{" not in r.text  # unknown, not zero
        assert value(r.text, "jobtrack_http_requests_total", method="POST", route="/jobs",
                     status="201") == 1
        for _ in range(5):  # the pool reconnects on its own
            r = await api.client.get("/metrics", headers=token)
            if value(r.text, "jobtrack_database_up") == 1:
                break
        assert value(r.text, "jobtrack_jobs", queue="q", status="pending") == 1
