"""Rate limits per key: headers on every authenticated answer, 429 with Retry-After, and
the limit holding in total across two API apps on one database (docs/targets.md R7)."""

import asyncio
import time

from sqlalchemy import select

from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.tables import rate_limits
from support.api import Api, assert_error, running


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
