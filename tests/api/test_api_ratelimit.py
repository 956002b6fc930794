"""Rate limits per key: headers on every authenticated answer, 429 with Retry-After, the
limit holding in total across two API apps on one database (docs/targets.md R7), and the
next chunk of quota leased ahead, in the background, without losing the bound when that
lease fails (decision 5)."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select

from jobtrack.api.state import state_of
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.tables import rate_limits
from support.api import Api, assert_error, running
from support.keys import make_keys


async def fresh_window(margin: float = 8.0) -> None:
    """Wait for a new one-minute window if this one ends within ``margin`` seconds."""
    left = 60 - time.time() % 60
    if left < margin:
        await asyncio.sleep(left + 0.05)


def limited(settings: Settings, limit: int, chunk: int = 0) -> Settings:
    return settings.model_copy(update={"rate_limit_per_minute": limit,
                                       "rate_limit_chunk": chunk})


async def test_headers_count_down_and_429_carries_retry_after(
    settings: Settings, keys: dict[str, str],
) -> None:
    await fresh_window()
    async with running(limited(settings, 5, chunk=2), keys) as api:
        seen = []
        for _ in range(5):
            r = await api.client.get("/jobs", headers=api.auth())
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit"] == "5"
            seen.append(int(r.headers["x-ratelimit-remaining"]))
            reset = int(r.headers["x-ratelimit-reset"])
            assert reset % 60 == 0 and 0 < reset - time.time() <= 60
        assert seen == [4, 3, 2, 1, 0]
        over = await api.client.get("/jobs", headers=api.auth())
        err = assert_error(over, 429, "rate_limited")
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert over.headers["x-ratelimit-remaining"] == "0"
        assert err["details"]["limit"] == 5
        # other keys have their own quota; errors carry the headers too
        missing = await api.client.get("/jobs/nope", headers=api.auth("b"))
        assert_error(missing, 404)
        assert missing.headers["x-ratelimit-remaining"] == "4"
        bad = await api.client.post("/jobs", json={}, headers=api.auth("b"))
        assert_error(bad, 422)
        assert bad.headers["x-ratelimit-limit"] == "5"


async def test_quota_is_leased_in_chunks_not_per_request(
    settings: Settings, db: Database, keys: dict[str, str],
) -> None:
    await fresh_window()
    async with running(limited(settings, 600), keys) as api:  # chunk: 600 / 20 = 30
        for _ in range(10):
            assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200
    async with db.read() as conn:
        used = [r.used for r in await conn.execute(select(rate_limits))]
    assert used == [30]  # one lease served all ten requests


async def test_concurrent_requests_of_one_process_stay_within_the_limit(
    settings: Settings, keys: dict[str, str],
) -> None:
    await fresh_window()
    async with running(limited(settings, 10, chunk=3), keys) as api:
        answers = await asyncio.gather(*(api.client.get("/jobs", headers=api.auth())
                                         for _ in range(30)))
    codes = [r.status_code for r in answers]
    assert codes.count(200) == 10 and codes.count(429) == 20


async def test_the_limit_holds_in_total_across_two_apps(
    settings: Settings, keys: dict[str, str],
) -> None:
    await fresh_window()
    config = limited(settings, 40, chunk=7)
    async with running(config, keys) as one, running(config, keys) as two:
        granted = {id(one): 0, id(two): 0}
        for i in range(120):
            api: Api = (one, two)[i % 2 if i < 60 else (i // 7) % 2]
            r = await api.client.get("/jobs", headers=api.auth())
            assert r.status_code in (200, 429), r.text
            granted[id(api)] += r.status_code == 200
        assert sum(granted.values()) == 40  # each drains its own leases, never more
        assert all(n > 0 for n in granted.values())
        for api in (one, two):
            over = await api.client.get("/jobs", headers=api.auth())
            assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1


async def stored_used(db: Database) -> list[int]:
    """The windows' counters in the database: the quota every process has leased."""
    async with db.read() as conn:
        return [r.used for r in await conn.execute(select(rate_limits))]


async def spend(api: Api, n: int, *, then_used: list[int] | None = None) -> None:
    """Make ``n`` requests, each answered 200; then, once the leases in flight settled,
    the stored counters are ``then_used`` (when given)."""
    for _ in range(n):
        r = await api.client.get("/jobs", headers=api.auth())
        assert r.status_code == 200, r.text
    if then_used is not None:
        await state_of(api.app).limiter.settle()
        assert await stored_used(api.db) == then_used


@asynccontextmanager
async def counters_locked(db: Database) -> AsyncIterator[None]:
    """Hold the rate-limit counters so that no lease can be written until the block ends
    (PostgreSQL: a table lock; SQLite: the database's one write lock)."""
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.exec_driver_sql("LOCK TABLE rate_limits IN EXCLUSIVE MODE")
        yield


async def test_the_next_chunk_is_leased_ahead_without_a_request_waiting(
    settings: Settings, db: Database, keys: dict[str, str],
) -> None:
    await fresh_window(margin=15)
    # a lease waiting on the lock below fails after this long (no test waits that long)
    config = limited(settings, 600, chunk=10).model_copy(
        update={"db_statement_timeout_seconds": 30})
    async with running(config, keys) as api:
        limiter = state_of(api.app).limiter
        # half the chunk spent: the next chunk is already leased
        await spend(api, 5, then_used=[20])
        async with counters_locked(db):
            # no lease can be written now, yet the 15 requests the process holds are
            # answered: the 15th starts the next lease ahead, which waits on the lock
            for _ in range(15):
                r = await api.client.get("/jobs", headers=api.auth())
                assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-remaining"] == str(600 - 20)
        await limiter.settle()
        assert await stored_used(db) == [30]
        r = await api.client.get("/jobs", headers=api.auth())
        assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining"] == str(600 - 30 + 9)


async def test_two_apps_leasing_ahead_never_exceed_the_limit(
    settings: Settings, db: Database, keys: dict[str, str],
) -> None:
    await fresh_window()
    config = limited(settings, 45, chunk=4)
    async with running(config, keys) as one, running(config, keys) as two:
        answers = await asyncio.gather(*(api.client.get("/jobs", headers=api.auth())
                                         for _ in range(40) for api in (one, two)))
        for api in (one, two):
            await state_of(api.app).limiter.settle()
    codes = [r.status_code for r in answers]
    assert set(codes) == {200, 429}
    # both may hold leased quota unspent (up to two chunks each): fewer, never more
    assert 45 - 2 * (2 * 4 - 1) <= codes.count(200) <= 45
    assert await stored_used(db) >= [45]


async def test_a_failed_lease_ahead_keeps_the_limit_and_answers_503_when_quota_runs_out(
    pg_url: str,
) -> None:
    db = Database(pg_url, pool_size=2)
    try:
        keys = await make_keys(db)
        await fresh_window(margin=20)
        config = Settings(database_url=pg_url, rate_limit_per_minute=100, rate_limit_chunk=10,
                          db_statement_timeout_seconds=1)
        async with running(config, keys) as api:
            limiter = state_of(api.app).limiter
            await spend(api, 5, then_used=[20])
            async with counters_locked(db):
                for _ in range(10):  # the 10th starts a lease ahead
                    assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200
                await limiter.settle()  # that lease waited on the lock and failed
                assert await stored_used(db) == [20]
                for _ in range(5):  # the quota held is still spent
                    assert (await api.client.get("/jobs", headers=api.auth())).status_code == 200
                # nothing held: this request leases by itself, and fails as without leasing
                # ahead: 503, nothing granted
                out = await api.client.get("/jobs", headers=api.auth())
                assert_error(out, 503, "database_unavailable")
            assert await stored_used(db) == [20]
            r = await api.client.get("/jobs", headers=api.auth())
            assert r.status_code == 200
            assert r.headers["x-ratelimit-remaining"] == str(100 - 30 + 9)
            await limiter.settle()
        assert await stored_used(db) == [30]
    finally:
        await db.dispose()
