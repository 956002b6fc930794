"""Enqueue, one job at a time: ``App.enqueue`` and ``POST /jobs``, one caller and 50
callers at once, side by side with a raw single-INSERT floor, in one run.

On a scratch PostgreSQL database (created on the server of ``--database-url``, dropped
after):

- **floor**: psycopg 3, one connection, autocommit, one ``INSERT`` of a job-sized row per
  job (one commit per job: the limit for a caller that waits for each job to be durable);
- **App.enqueue x1**: one caller, ``await app.enqueue(...)`` in a loop;
- **App.enqueue x50**: 50 asyncio tasks, each enqueuing in a loop (group commit shares
  their transactions);
- **POST /jobs x1** and **x50**: a real ``jobtrack serve`` process (default settings),
  driven by wrk (keep-alive, one request at a time per connection; for ``--n / 200``
  seconds), or by httpx clients when wrk is missing (a Python load generator on the same
  cores holds back the x50 figure: prefer wrk).

Each configuration runs ``--n`` jobs per repetition; repetitions are interleaved and the
order rotates, so drift in the machine's load hits all alike. Prints medians (jobs/s) and
ratios to the floor.

    .venv/bin/python bench/bench_enqueue.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --n 2000 --reps 3
"""

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from scratch import scratch  # bench/: the script's own folder

from jobtrack.queue.app import App
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key

CALLERS = 50
FLOOR_TABLE = """CREATE TABLE IF NOT EXISTS floor_jobs (
    id bigserial PRIMARY KEY, queue text NOT NULL, name text NOT NULL, status text NOT NULL,
    data jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"""


async def floor(url: str, n: int) -> float:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(FLOOR_TABLE)
        start = time.perf_counter()
        for i in range(n):
            await conn.execute(
                "INSERT INTO floor_jobs (queue, name, status, data) VALUES (%s, %s, %s, %s)",
                ("bench", "noop", "pending", f'{{"i": {i}}}'))
        return n / (time.perf_counter() - start)


async def app_enqueue(url: str, n: int, callers: int) -> float:
    app = App(settings=Settings(database_url=url))
    try:
        await app.enqueue("noop", _queue="bench")  # opens the pool, records the tenant
        each = n // callers

        async def caller() -> None:
            for i in range(each):
                await app.enqueue("noop", _queue="bench", i=i)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return each * callers / (time.perf_counter() - start)
    finally:
        await app.close()


WRK_POST = """
wrk.method = "POST"
wrk.body = '{"queueName": "bench", "name": "noop", "data": {"i": 1}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("AUTH")
"""


async def wrk_enqueue(base: str, key: str, seconds: int, callers: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(WRK_POST)
        lua.flush()
        out = subprocess.run(
            ["wrk", f"-t{min(callers, 2)}", f"-c{callers}", f"-d{seconds}s", "-s", lua.name,
             f"{base}/jobs"], env=dict(os.environ, AUTH=f"Bearer {key}"),
            capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(out)
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(out)
    return float(found.group(1))


async def http_enqueue(base: str, key: str, n: int, callers: int) -> float:
    if shutil.which("wrk"):
        return await wrk_enqueue(base, key, max(3, n // 200), callers)
    each = n // callers
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers) as client:
        (await client.post("/jobs", json={"queueName": "bench", "name": "noop"})
         ).raise_for_status()

        async def caller() -> None:
            for i in range(each):
                r = await client.post("/jobs", json={"queueName": "bench", "name": "noop",
                                                     "data": {"i": i}})
                if r.status_code != 201:
                    raise RuntimeError(r.text)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return each * callers / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, JOBTRACK_DATABASE_URL=url,
               JOBTRACK_RATE_LIMIT_PER_MINUTE="100000000")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "jobtrack"), "serve",
                             "--port", str(port), "--no-migrate", "--log-level", "warning"],
                            env=env)
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("jobtrack serve did not start")


async def new_key(url: str) -> str:
    db = Database(url, pool_size=1)
    async with db.write() as conn:
        raw, _ = await create_key(conn, tenant="bench", admin=False, now=datetime.now(UTC))
    await db.dispose()
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True, help="a PostgreSQL server")
    ap.add_argument("--n", type=int, default=2000, help="jobs per configuration and rep")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rates: dict[str, list[float]] = {}
    with scratch("postgresql", args.database_url, prefix="jtenq") as url:
        key = asyncio.run(new_key(url))
        proc, base = serve(url)
        try:
            configs: dict[str, Callable[[], Awaitable[float]]] = {
                "floor: single INSERT, autocommit": lambda: floor(url, args.n),
                "App.enqueue x1": lambda: app_enqueue(url, args.n, 1),
                f"App.enqueue x{CALLERS}": lambda: app_enqueue(url, args.n, CALLERS),
                "POST /jobs x1": lambda: http_enqueue(base, key, args.n, 1),
                f"POST /jobs x{CALLERS}": lambda: http_enqueue(base, key, args.n, CALLERS),
            }
            names = list(configs)
            for rep in range(args.reps):
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    rate = asyncio.run(configs[name]())
                    rates.setdefault(name, []).append(rate)
                    print(f"rep {rep + 1} {name:36s} {rate:8.0f} jobs/s", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    base_rate = statistics.median(rates[names[0]])
    print(f"\nenqueue one job at a time, N={args.n}, medians of {args.reps} "
          f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)")
    print("| configuration | jobs/s | of the floor |")
    print("|---|---:|---:|")
    for name in names:
        rate = statistics.median(rates[name])
        print(f"| {name} | {rate:,.0f} | {rate / base_rate:.2f}x |")


if __name__ == "__main__":
    main()
