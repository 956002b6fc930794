"""Bearer keys: 401 in the envelope on every protected route, the cached lookup (one
database round trip for ``GET /jobs/{id}``), and the documented revocation delay."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from jobtrack.api import state as api_state
from jobtrack.api.auth import KeyCache
from jobtrack.api.state import ApiState
from jobtrack.errors import Unauthorized
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import lookup_key, revoke_key
from support.api import Api, assert_error, running

OPEN = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}


def state_of(api: Api) -> ApiState:
    return api_state.state_of(api.app)


async def test_every_jobs_and_queues_route_wants_a_key(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    checked = 0
    for template, operations in paths.items():
        path = template.replace("{jobId}", "01a2b3c4-0000-7000-8000-000000000000") \
            .replace("{queueName}", "q").replace("{phase}", "p")
        for method in operations:
            for headers in ({}, {"Authorization": "Bearer jt_not-a-key"},
                            {"Authorization": "Basic dXNlcjpwYXNz"},
                            {"Authorization": "Bearer " + "k" * 5000}):
                r = await api.client.request(method.upper(), path, headers=headers, json={})
                if template in OPEN:
                    assert r.status_code < 400, (method, template)
                    continue
                err = assert_error(r, 401, "unauthorized")
                assert r.headers["www-authenticate"] == "Bearer"
                assert "x-ratelimit-limit" not in r.headers
                assert "Authorization" in str(err["details"])
                checked += 1
    assert checked >= 4 * 12


async def test_health_and_readiness_need_no_key(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ready"}


async def test_get_job_is_one_statement_with_cached_key_and_leased_quota(api: Api) -> None:
    job = await api.create()
    url = f"/jobs/{job['jobId']}"
    await api.client.get(url, headers=api.auth())  # key cached, quota leased
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    db = state_of(api).db
    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    db.record_driver_statements = True  # (PostgreSQL: the read runs on the driver)
    try:
        for _ in range(5):
            r = await api.client.get(url, headers=api.auth())
            assert r.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
        db.record_driver_statements = False
    statements += db.driver_statements
    # (a live-event poller may query the events table meanwhile: not the request's)
    ours = [s for s in statements if "FROM events" not in s]
    assert len(ours) == 5, ours  # the job's own SELECT, nothing for key or quota
    assert all("FROM jobs" in s for s in ours)


async def test_revoked_key_is_refused_after_the_cache_delay(
    settings: Settings, db: Database, keys: dict[str, str],
) -> None:
    cached = settings.model_copy(update={"key_cache_seconds": 3600.0})
    async with running(cached, keys) as api:
        assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200
        async with db.read() as conn:
            key = await lookup_key(conn, keys["a"])
        assert key is not None
        async with db.write() as conn:
            assert await revoke_key(conn, key.id, datetime.now(UTC))
        # within key_cache_seconds the process still trusts what it looked up
        assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200
        state_of(api).keys.forget()  # what the cache expiring does
        assert_error(await api.client.get("/jobs", headers=api.auth()), 401)
    uncached = settings.model_copy(update={"key_cache_seconds": 0.0})
    async with running(uncached, keys) as api:
        assert_error(await api.client.get("/jobs", headers=api.auth()), 401)
        assert (await api.client.get("/jobs", headers=api.auth("b"))).status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "bearer", "Token abc", "Bearer a b"])
async def test_malformed_authorization_headers_are_401(api: Api, header: str) -> None:
    r = await api.client.get("/jobs", headers={"Authorization": header})
    assert_error(r, 401, "unauthorized")


async def test_concurrent_requests_with_an_uncached_key_share_one_lookup(
    db: Database, keys: dict[str, str],
) -> None:
    # a cold start (or an expired entry) under load: one read for the key, not one
    # pooled connection per waiting request
    cache = KeyCache(db, ttl=60.0)
    lookups: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM api_keys" in statement:
            lookups.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        resolved = await asyncio.gather(*(cache.resolve(keys["a"]) for _ in range(20)))
        with pytest.raises(Unauthorized):  # an unknown key is shared and refused alike
            await asyncio.gather(*(cache.resolve("jt_unknown") for _ in range(5)))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert {k.id for k in resolved} == {resolved[0].id} and resolved[0].tenant == "tenant-a"
    assert len(lookups) == 2, lookups
