"""Socket.IO event latency: a flow job's transition committed -> a ``python-socketio``
client connected to an API process receives its ``flow:job:updated`` (seed 003's event).

On a scratch database (PostgreSQL on the server of ``--database-url``, or SQLite):

1. one API process (``uvicorn --factory jobtrack.api.app:create_app``, as in
   ``bench_events.py``) serves it;
2. a client process connects over the WebSocket transport with a key of the flow's
   tenant and timestamps each ``flow:job:updated`` as it arrives (``time.time_ns()``);
3. this process is the writer: a flow of ``--n`` jobs is stored, then each job is
   moved to ``running`` by one write transaction through the store (``change_job``),
   paced at ``--rate`` per second; ``t_commit`` is taken as the commit returns;
4. latency = ``t_recv - t_commit`` per job, percentiles by nearest rank.

    .venv/bin/python bench/bench_socketio.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --n 1000 --rate 200
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_events import api_server, contention, machine, summary  # bench/: this folder
from scratch import scratch

from jobtrack.domain.flows import FlowNode
from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import Change, Job, JobUpdate
from jobtrack.domain.status import JobStatus
from jobtrack.store.engine import Database
from jobtrack.store.flows import create_flow
from jobtrack.store.jobs import change_job
from jobtrack.store.keys import create_key

TENANT = "bench"
RUNNING = JobStatus.RUNNING.value


async def socketio_client(url: str, key: str, n: int, out: str) -> None:
    import socketio  # type: ignore[import-untyped]

    got: dict[str, int] = {}
    done = asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)

    async def job_updated(payload: dict[str, Any]) -> None:
        t = time.time_ns()
        if payload["jobStatus"] == RUNNING:
            got[payload["jobId"]] = t
            if len(got) >= n:
                done.set()

    client.on("flow:job:updated", job_updated)
    await client.connect(url, auth={"token": key}, transports=["websocket"])
    print("READY", flush=True)
    try:
        await asyncio.wait_for(done.wait(), 60 + n / 10)
    finally:
        await client.disconnect()
        Path(out).write_text("".join(f"{job},{t}\n" for job, t in got.items()))


async def write(url: str, n: int, rate: float, tmp: str) -> list[int]:
    db = Database(url, pool_size=2)
    try:
        now = datetime.now(UTC)
        async with db.write() as conn:
            key, _ = await create_key(conn, tenant=TENANT, admin=False, now=now)
            root = FlowNode(name="root", queue_name="bench", children=[
                FlowNode(name=f"job-{i}", queue_name="bench") for i in range(n)])
            flow, jobs = await create_flow(conn, root, tenant=TENANT, flowname="bench",
                                           now=now, actor="bench", max_depth=2,
                                           max_jobs=n + 1, default_max_attempts=1)
        children = [j.id for j in jobs if j.id != flow.root_job_id]
        out = f"{tmp}/socketio.csv"
        with api_server(url) as api:
            client = subprocess.Popen(
                [sys.executable, __file__, "--role", "client", "--url", api, "--key", key,
                 "--n", str(n), "--out", out], stdout=subprocess.PIPE, text=True)
            assert client.stdout is not None
            if client.stdout.readline().strip() != "READY":
                raise RuntimeError("the Socket.IO client did not start")
            commits: dict[str, int] = {}
            period = 1.0 / rate
            start = time.monotonic() + 0.2
            for i, job_id in enumerate(children):
                delay = start + i * period - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                at = datetime.now(UTC)

                def plan(job: Job, at: datetime = at) -> Change:
                    return plan_update(job, JobUpdate(status=JobStatus.RUNNING), at)

                async with db.write() as conn:
                    await change_job(conn, job_id, plan, tenant=None, actor="bench", now=at)
                commits[job_id] = time.time_ns()
            if client.wait(120) != 0:
                raise RuntimeError("the Socket.IO client failed")
        received = dict(line.split(",") for line in Path(out).read_text().splitlines())
        missing = len(commits) - len(received)
        if missing:
            raise RuntimeError(f"{missing} events never arrived")
        return [int(received[job]) - t for job, t in commits.items()]
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (a scratch database is made on it); "
                             "without it, SQLite")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--role", default="writer", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        asyncio.run(socketio_client(args.url, args.key, args.n, args.out))
        return
    backend = "sqlite" if args.database_url is None else "postgresql"
    with scratch(backend, args.database_url, prefix="jtsio") as url, \
            tempfile.TemporaryDirectory() as tmp:
        before = machine()
        latencies = asyncio.run(write(url, args.n, args.rate, tmp))
        after = machine()
    s = summary(latencies)
    print(f"Socket.IO flow:job:updated latency, {backend}, n={s['n']:.0f} at "
          f"{args.rate:g}/s (ms): " + ", ".join(
              f"{k} {v:.2f}" for k, v in s.items() if k != "n"))
    print(contention(before, after))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
