"""P4: the status read, ``GET /jobs/{id}`` with an API key, side by side with a raw-driver
floor serving the same row, in one run.

On a scratch PostgreSQL database (created on the server of ``--database-url``, dropped
after), with one job of four phases stored by jobtrack:

- **jobtrack**: ``jobtrack serve`` (one process, default settings, uvloop + httptools),
  ``GET /jobs/{id}`` with ``Authorization: Bearer <key>``: auth (cached), rate limit
  (leased), one SELECT of the job joined to its phases, the wire form;
- **floor**: the least a Python service can do for the same answer: FastAPI on the same
  uvicorn, one ``psycopg_pool`` connection per request (autocommit, the pool's size equal
  to jobtrack's), ``SELECT row_to_json(...)`` of the same job row, no auth, no phases.

wrk drives each at 32 and 64 connections (``--duration`` s, after a warm-up), then one
connection for the latency percentiles; repetitions are interleaved (floor, jobtrack,
jobtrack, floor, ...) so that drift in the machine's load hits both alike. Prints medians
and the jobtrack / floor ratios.

    .venv/bin/python bench/bench_api_reads.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --reps 3
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from scratch import scratch  # bench/: the script's own folder

from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key

FLOOR_APP = '''
import os
from contextlib import asynccontextmanager
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from psycopg_pool import AsyncConnectionPool

DSN = os.environ["FLOOR_DSN"]
state = {}

@asynccontextmanager
async def lifespan(app):
    size = int(os.environ["FLOOR_POOL"])
    pool = AsyncConnectionPool(DSN, min_size=size, max_size=size, open=False,
                               kwargs={"autocommit": True})
    await pool.open(wait=True)
    state["pool"] = pool
    yield
    await pool.close()

app = FastAPI(lifespan=lifespan)

@app.get("/jobs/{job_id}")
async def row(job_id: str):
    async with state["pool"].connection() as conn:
        cur = await conn.execute(
            "SELECT row_to_json(j)::text FROM jobs j WHERE id = %s", (job_id,))
        found = await cur.fetchone()
    if found is None:
        raise HTTPException(404)
    return Response(found[0], media_type="application/json")
'''

WRK_LUA = r'''
wrk.headers["Authorization"] = os.getenv("AUTH")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p99_us\":%d,"
    .. "\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def seed(url: str) -> tuple[str, str]:
    """A key and a four-phase job with progress, stored by jobtrack; their ids."""
    from jobtrack.api.app import create_app

    db = Database(url, pool_size=1)
    async with db.write() as conn:
        raw, _ = await create_key(conn, tenant="bench", admin=False, now=datetime.now(UTC))
    await db.dispose()
    app = create_app(Settings(database_url=url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            r = await c.post("/jobs", headers={"Authorization": f"Bearer {raw}"}, json={
                "queueName": "bench", "name": "ingest", "data": {"documentId": "d1"},
                "phases": ["loading", "chunking", "embedding", "indexing"]})
            r.raise_for_status()
            return raw, str(r.json()["jobId"])


def start(which: str, url: str, port: int, workdir: Path, pool: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, JOBTRACK_DATABASE_URL=url, FLOOR_DSN=url, FLOOR_POOL=str(pool),
               JOBTRACK_RATE_LIMIT_PER_MINUTE="100000000", PYTHONPATH=str(workdir))
    if which == "jobtrack":
        cmd = [str(Path(sys.executable).parent / "jobtrack"), "serve", "--port", str(port),
               "--no-migrate", "--log-level", "warning"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(port),
               "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=workdir)
    wait_ready(f"http://127.0.0.1:{port}/healthz")
    return proc


def wrk(port: int, path: str, key: str, conns: int, seconds: int, lua: Path) -> dict[str, Any]:
    threads = 1 if conns == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
         "-s", str(lua), f"http://127.0.0.1:{port}{path}"],
        env=dict(os.environ, AUTH=f"Bearer {key}"), capture_output=True, text=True, check=True)
    found = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if found is None:
        raise RuntimeError(out.stdout + out.stderr)
    r: dict[str, Any] = json.loads(found.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    if r["errors"] or r["non2xx"]:
        raise RuntimeError(f"wrk saw errors: {r}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True, help="a PostgreSQL server")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--conns", default="32,64")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian package wrk)")
    conns = [int(c) for c in args.conns.split(",")] + [1]
    pool = Settings().pool_size
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with scratch("postgresql", args.database_url, prefix="jtreads") as url, \
            tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "floor_app.py").write_text(FLOOR_APP)
        lua = workdir / "report.lua"
        lua.write_text(WRK_LUA)
        key, job_id = asyncio.run(seed(url))
        order = ["floor", "jobtrack"]
        for rep in range(args.reps):
            for which in order if rep % 2 == 0 else order[::-1]:
                port = free_port()
                proc = start(which, url, port, workdir, pool)
                try:
                    path = f"/jobs/{job_id}"
                    wrk(port, path, key, max(conns), 3, lua)  # warm-up
                    for c in conns:
                        r = wrk(port, path, key, c, args.duration, lua)
                        results.setdefault((which, c), []).append(r)
                        print(f"rep {rep + 1} {which:8s} c={c:<3d} {r['rps']:8.0f} req/s "
                              f"p50 {r['p50_us'] / 1000:6.2f} ms p99 {r['p99_us'] / 1000:6.2f} ms",
                              flush=True)
                finally:
                    proc.terminate()
                    proc.wait(timeout=20)
    print(f"\nGET /jobs/{{id}}, medians of {args.reps} runs "
          f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)")
    print("| connections | jobtrack req/s | floor req/s | ratio | jobtrack p50 / p99 ms "
          "| floor p50 / p99 ms | p99 ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        jt, fl = results[("jobtrack", c)], results[("floor", c)]
        rj = statistics.median(r["rps"] for r in jt)
        rf = statistics.median(r["rps"] for r in fl)
        pj = [statistics.median(r[k] for r in jt) / 1000 for k in ("p50_us", "p99_us")]
        pf = [statistics.median(r[k] for r in fl) / 1000 for k in ("p50_us", "p99_us")]
        print(f"| {c} | {rj:,.0f} | {rf:,.0f} | {rj / rf:.2f}x | {pj[0]:.2f} / {pj[1]:.2f} "
              f"| {pf[0]:.2f} / {pf[1]:.2f} | {pj[1] / pf[1]:.2f}x |")


if __name__ == "__main__":
    main()
