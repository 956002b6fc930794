"""jobtrack beside the peers: a driver in the harness protocol (``$PEERS_DIR/bench/common.py``).

Per run, exactly as the peers' drivers do:

1. reset the store: PostgreSQL ``DROP/CREATE DATABASE bench_jobtrack`` on the harness's
   throwaway server (``common.pg_dsn``), or a new SQLite file in a temp dir, then
   jobtrack's own migration (``jobtrack.store.migrate.upgrade``);
2. time ``--single`` single enqueues (``App.enqueue``, one call and one commit per job),
   then reset again;
3. time the bulk enqueue of N no-op jobs (``App.enqueue_many``: one transaction, jobs and
   their ``job.created`` events);
4. spawn ONE worker process with jobtrack's own CLI (``jobtrack worker noop_app:app``,
   ``bench/noop_app.py``) through ``common.Worker``, and poll the jobs table every 0.2 s
   until N jobs are ``completed``;
5. first/last done = min/max of the stored ``completed_at`` (the time the worker's
   completion batch was written), stop the worker (SIGTERM: graceful);
6. verify in the store: exactly N jobs, all ``completed``; N ``job.completed`` events;
   3N history rows (created, started, completed: events with ``to_status``);
7. print one JSON line with the harness's Result fields (also appended to ``--out``).

    PEERS_BENCH_DIR=/tmp/peers/bench .venv/bin/python bench/peers/p_jobtrack.py --n 2000
    ... --backend sqlite --variant sqlite
    ... --concurrency 100 --variant c100
"""

import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from jobtrack.queue.app import App
from jobtrack.settings import Settings
from jobtrack.store import migrate

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

common, pgcost = harness.load()
sys.path.insert(0, str(harness.BENCH))  # noop_app

DB = "bench_jobtrack"
#: `jobtrack worker --concurrency` default, read from the settings (labels the runs)
DEFAULT_CONCURRENCY = Settings.model_fields["worker_concurrency"].default


class Store:
    """The database one run uses: reset, poll and verify through a plain connection."""

    backend = ""
    url = ""

    def reset(self) -> None:
        raise NotImplementedError

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def epoch(self, value: Any) -> float | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def done_count(self) -> int:
        return int(self.query("SELECT count(*) FROM jobs WHERE status = 'completed'")[0][0])


class PgStore(Store):
    backend = "postgresql"

    def __init__(self) -> None:
        self.url = common.pg_dsn(DB)
        self._conn: psycopg.Connection[Any] | None = None

    def reset(self) -> None:
        self.close()
        with psycopg.connect(common.pg_dsn("postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {DB}")
        migrate.upgrade(self.url)

    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            self._conn = psycopg.connect(self.url, autocommit=True)
        return self._conn

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.conn().execute(sql).fetchall()

    def epoch(self, value: Any) -> float | None:
        return None if value is None else float(value.timestamp())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SqliteStore(Store):
    """A file database in a fresh temp dir (WAL, jobtrack's default pragmas)."""

    backend = "sqlite"

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._conn: sqlite3.Connection | None = None

    def reset(self) -> None:
        self.close()
        self._tmp = tempfile.TemporaryDirectory(prefix="jtbench-sqlite-")
        self.path = Path(self._tmp.name) / "bench.db"
        self.url = f"sqlite:///{self.path}"
        migrate.upgrade(self.url)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        return self._conn.execute(sql).fetchall()

    def epoch(self, value: Any) -> float | None:
        if value is None:
            return None
        ts = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _app(url: str) -> App:
    from noop_app import app as bench_app

    app = App(url, tenant="bench")
    app.tasks = bench_app.tasks
    return app


async def _warm(app: App) -> None:
    """Open the pool before the clock starts (the peers connect before timing too)."""
    async with app.db.read() as conn:
        await conn.exec_driver_sql("SELECT 1")


async def single_enqueue(url: str, m: int) -> float:
    async with _app(url) as app:
        await _warm(app)
        t0 = time.perf_counter()
        for i in range(m):
            await app.enqueue("noop", i=i)
        return time.perf_counter() - t0


async def bulk_enqueue(url: str, n: int) -> tuple[float, float]:
    async with _app(url) as app:
        await _warm(app)
        ts = time.time()
        t0 = time.perf_counter()
        jobs = await app.enqueue_many("noop", ({"i": i} for i in range(n)))
        elapsed = time.perf_counter() - t0
        assert len(jobs) == n, len(jobs)
        return ts, elapsed


def worker_cmd(url: str, concurrency: int | None) -> list[str]:
    script = Path(sys.executable).parent / "jobtrack"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "jobtrack"]
    cmd += ["--database-url", url, "worker", "noop_app:app", "--no-migrate"]
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    return cmd


def verify(store: Store, res: Any, n: int) -> None:
    statuses = {str(s): int(c) for s, c in store.query(
        "SELECT status, count(*) FROM jobs GROUP BY status")}
    done_events, done_jobs = store.query(
        "SELECT count(*), count(DISTINCT job_id) FROM events WHERE type = 'job.completed'")[0]
    history = store.query("SELECT count(*) FROM events WHERE to_status IS NOT NULL")[0][0]
    res.verified_done = statuses.get("completed", 0)
    res.verified_failed = sum(c for s, c in statuses.items() if s != "completed")
    res.ok = (res.verified_done == n and res.verified_failed == 0 and done_events == n
              and done_jobs == n and history == 3 * n)
    res.notes.append(f"statuses {statuses}, job.completed events {done_events} "
                     f"({done_jobs} jobs), history rows {history}")
    if not res.ok:
        res.error = (f"store has {statuses}, {done_events} job.completed events, {history} "
                     f"history rows; expected {n} completed, {n} events, {3 * n} history rows")


def main() -> None:
    def extra(p: Any) -> None:
        p.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
        p.add_argument("--concurrency", type=int, default=None,
                       help=f"worker --concurrency (default: jobtrack's, {DEFAULT_CONCURRENCY})")

    a = common.parse_args(extra)
    store: Store = PgStore() if a.backend == "postgresql" else SqliteStore()
    res = common.Result(peer="jobtrack", variant=a.variant, n=a.n, rep=a.rep,
                        versions={**common.versions("jobtrack", "sqlalchemy", "psycopg",
                                                    "aiosqlite"),
                                  "jobtrack_git": harness.git_revision()})
    res.settings = {
        "worker": "jobtrack worker noop_app:app (1 process, asyncio)",
        "concurrency": a.concurrency or f"default ({DEFAULT_CONCURRENCY})",
        "store": "PG" if a.backend == "postgresql" else "SQLite",
        "durability": ("PG defaults of the harness (fsync, synchronous_commit on)"
                       if a.backend == "postgresql"
                       else "SQLite file, WAL, synchronous=NORMAL (jobtrack's default)"),
    }
    res.enqueue_api = "App.enqueue_many (1 transaction: jobs + job.created events)"

    def body() -> None:
        if a.single:
            store.reset()
            res.single_enqueue_n = a.single
            res.single_enqueue_s = asyncio.run(single_enqueue(store.url, a.single))
        store.reset()
        res.enqueue_start_ts, res.enqueue_s = asyncio.run(bulk_enqueue(store.url, a.n))

        pg = isinstance(store, PgStore)
        before = store.query(pgcost.SQL)[0] if pg else None
        w = common.Worker(worker_cmd(store.url, a.concurrency), name=f"jobtrack-{a.variant}",
                          env={"PYTHONPATH": os.pathsep.join([str(harness.BENCH),
                                                              str(common.HERE)])})
        res.worker_spawn_ts = w.spawn_ts
        try:
            count: Callable[[], int] = store.done_count
            common.wait_until_done(w, a.n, count, a.timeout)
        finally:
            w.stop()
        if pg:
            time.sleep(1.5)  # let the exited backends' statistics land
            res.settings["db_cost_processing"] = pgcost.cost(
                tuple(before or ()), tuple(store.query(pgcost.SQL)[0]), a.n)
        first, last, first_start = store.query(
            "SELECT min(completed_at), max(completed_at), min(started_at) FROM jobs")[0]
        res.first_done_ts, res.last_done_ts = store.epoch(first), store.epoch(last)
        res.settings["first_started_ts"] = store.epoch(first_start)
        verify(store, res, a.n)

    try:
        common.run_guarded(res, a.out, body)
    finally:
        store.close()


if __name__ == "__main__":
    main()
