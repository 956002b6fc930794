"""The API keeps its PostgreSQL connections: a burst of concurrent requests above the
pool size waits for a pooled connection instead of opening (and closing) new backends."""

import asyncio

import psycopg

from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import running
from support.keys import make_keys


def _sessions(url: str) -> int:
    """Sessions PostgreSQL has opened for this database so far (pg_stat_database)."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SELECT pg_stat_clear_snapshot()")
        row = c.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_bursts_above_the_pool_size_open_no_new_backends(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)
    keys = await make_keys(db)
    await db.dispose()
    settings = Settings(database_url=pg_url, pool_size=4, rate_limit_per_minute=1_000_000)
    async with running(settings, keys) as api:
        job = await api.create()
        url = f"/jobs/{job['jobId']}"

        async def burst() -> None:
            answers = await asyncio.gather(
                *(api.client.get(url, headers=api.auth()) for _ in range(30)))
            assert {r.status_code for r in answers} == {200}

        await burst()  # the pool fills up to its size
        await asyncio.sleep(0.5)  # the stats collector reports sessions when they end
        before = _sessions(pg_url)
        for _ in range(3):
            await burst()
        await asyncio.sleep(0.5)
        opened = _sessions(pg_url) - before
    # the checks themselves open 2 sessions; a pool with overflow opened 17 here
    assert opened <= 4, f"{opened} new PostgreSQL sessions for 90 requests"
