"""P5: event latency, transition committed -> an SSE and a WebSocket client receive it,
through a second API process (``docs/targets.md``; target p99 under 5 ms; the peers
harness's raw floor measured a bare NOTIFY -> SSE hop at p99 0.55 ms on these machines).

On a scratch PostgreSQL database (created on the server of ``--database-url``, dropped
after):

1. two API processes (``uvicorn --factory jobtrack.api.app:create_app``, uvloop and
   httptools, one worker each) serve the same database: A and B;
2. two client processes connect to B only: one follows ``GET /events?jobId=...`` (SSE,
   httpx streaming), one joins the room ``job:<id>`` on ``GET /ws`` (``websockets``);
   each timestamps every event as it arrives (``time.time_ns()``);
3. this process is the writer: ``--n`` progress transitions of one job, each one write
   transaction through the store (``change_job``: lock, plan, persist with its event),
   paced at ``--rate`` per second on an absolute schedule; ``t_commit`` is taken as the
   commit returns;
4. latency = ``t_recv - t_commit`` per event (same machine clock), percentiles by
   nearest rank, per repetition and pooled. Negative values (the client won the race
   against the writer's own return from COMMIT) are kept, as in the floor.

    .venv/bin/python bench/bench_events.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --n 2000 --rate 200 --reps 3
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from scratch import scratch  # bench/: the script's own folder

from jobtrack.domain.ids import new_id
from jobtrack.domain.planner import plan_update
from jobtrack.domain.records import Change, Job, JobUpdate, Progress, new_job
from jobtrack.store.engine import Database
from jobtrack.store.jobs import change_job, insert_jobs
from jobtrack.store.keys import create_key


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (as the floor's ``common.pct``)."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(p / 100.0 * len(values) + 0.5) - 1))
    return values[k]


def summary(latencies_ns: Sequence[int]) -> dict[str, float]:
    v = sorted(x / 1e6 for x in latencies_ns)
    return {"n": len(v), "min": v[0], "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
            "p99.9": pct(v, 99.9), "max": v[-1]}


def machine() -> tuple[float, float, float]:
    """Monotonic time, CPU pressure (PSI "some", microseconds) and busy CPU ticks: the
    machine is shared, so each repetition reports how contended it was."""
    try:
        with open("/proc/pressure/cpu") as f:
            psi = float(f.readline().split("total=")[1])
    except (OSError, IndexError):
        psi = float("nan")
    with open("/proc/stat") as f:
        ticks = [float(x) for x in f.readline().split()[1:]]
    return time.monotonic(), psi, sum(ticks[:8]) - ticks[3] - ticks[4]


def contention(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    wall = after[0] - before[0]
    pressure = (after[1] - before[1]) / 1e6 / wall * 100
    busy = (after[2] - before[2]) / os.sysconf("SC_CLK_TCK") / wall / (os.cpu_count() or 1)
    return (f"machine: CPU busy {busy * 100:.0f}% of {os.cpu_count()} cores, "
            f"CPU pressure {pressure:.0f}%")


# --- client processes --------------------------------------------------------------


def run_sse_client(url: str, key: str, job_id: str, n: int, out: str) -> None:
    """Follow SSE, print READY once connected, record ``seq,t_recv_ns`` per event."""
    got: list[tuple[int, int]] = []
    with httpx.Client(timeout=httpx.Timeout(10, read=120)) as client, client.stream(
        "GET", f"{url}/events", params={"jobId": job_id},
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data:"):
                t = time.time_ns()
                event = orjson.loads(line[5:])
                if event["type"] == "job.progress":
                    got.append((int(event["data"]["progress"]["done"]), t))
                    if len(got) >= n:
                        break
            elif line.startswith(": connected"):
                print("READY", flush=True)
    Path(out).write_text("".join(f"{s},{t}\n" for s, t in got))


async def ws_client(url: str, key: str, job_id: str, n: int, out: str) -> None:
    from websockets.asyncio.client import connect

    got: list[tuple[int, int]] = []
    ws_url = url.replace("http://", "ws://") + "/ws"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        await ws.recv()  # authenticated
        await ws.send(json.dumps({"action": "subscribe", "room": f"job:{job_id}"}))
        await ws.recv()  # subscribed
        print("READY", flush=True)
        while len(got) < n:
            message = await ws.recv()
            t = time.time_ns()
            event = orjson.loads(message)
            if event.get("type") == "job.progress":
                got.append((int(event["data"]["progress"]["done"]), t))
    Path(out).write_text("".join(f"{s},{t}\n" for s, t in got))


# --- servers and database ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api_server(database_url: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "JOBTRACK_DATABASE_URL": database_url,
           "JOBTRACK_RATE_LIMIT_PER_MINUTE": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "jobtrack.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http",
         "httptools", "--ws", "websockets-sansio", "--no-access-log", "--log-level",
         "warning", "--timeout-graceful-shutdown", "1"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("API server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- one repetition ----------------------------------------------------------------


def start_client(role: str, url: str, key: str, job_id: str, n: int, out: str) -> Any:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", role, "--url", url, "--key", key,
         "--job", job_id, "--n", str(n), "--out", out],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        raise RuntimeError(f"{role} client did not start: {line!r}")
    return proc


async def write_transitions(db: Database, job_id: str, n: int, rate: float) -> dict[int, int]:
    commits: dict[int, int] = {}
    period = 1.0 / rate
    start = time.monotonic() + 0.2
    for seq in range(1, n + 1):
        delay = start + (seq - 1) * period - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = datetime.now(UTC)
        update = JobUpdate(progress=Progress(seq, n))

        def plan(job: Job, update: JobUpdate = update, now: datetime = now) -> Change:
            return plan_update(job, update, now)

        async with db.write() as conn:
            await change_job(conn, job_id, plan, tenant=None, actor="bench", now=now)
        commits[seq] = time.time_ns()
    return commits


async def one_rep(database_url: str, url_b: str, key: str, n: int, rate: float,
                  tmp: str, roles: Sequence[str]) -> dict[str, list[int]]:
    db = Database(database_url, pool_size=2)
    try:
        job = new_job(id=new_id(), tenant="bench", queue_name="bench", name="latency",
                      now=datetime.now(UTC))
        async with db.write() as conn:
            await insert_jobs(conn, [job], actor="bench")
        outs = {role: os.path.join(tmp, f"{role}-{job.id}.csv") for role in roles}
        clients = {role: start_client(role, url_b, key, job.id, n, out)
                   for role, out in outs.items()}
        await asyncio.sleep(0.3)
        commits = await write_transitions(db, job.id, n, rate)
        result: dict[str, list[int]] = {}
        for role, proc in clients.items():
            proc.wait(60)
            rows = [line.split(",") for line in Path(outs[role]).read_text().splitlines()]
            received = {int(s): int(t) for s, t in rows}
            missing = n - len(received)
            if missing:
                print(f"  {role}: {missing} events MISSING", flush=True)
            result[role] = [received[s] - commits[s] for s in sorted(received)]
        return result
    finally:
        await db.dispose()


def show(label: str, s: dict[str, float]) -> None:
    print(f"  {label:<22} n={s['n']:<5} p50={s['p50']:.3f}  p90={s['p90']:.3f}  "
          f"p99={s['p99']:.3f}  p99.9={s['p99.9']:.3f}  max={s['max']:.3f}  "
          f"min={s['min']:.3f} ms", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--database-url", default=os.environ.get("JOBTRACK_TEST_POSTGRES_URL"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--clients", choices=["both", "sse", "ws"], default="both",
                    help="which clients to run (one at a time isolates each path)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--role", choices=["sse", "ws"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == "sse":
        run_sse_client(args.url, args.key, args.job, args.n, args.out)
        return
    if args.role == "ws":
        asyncio.run(ws_client(args.url, args.key, args.job, args.n, args.out))
        return
    if not args.database_url or not args.database_url.startswith("postgres"):
        ap.error("--database-url must name a PostgreSQL server (P5 is measured on PostgreSQL)")
    print(f"P5 event latency: {args.reps} x {args.n} transitions at {args.rate:g}/s, "
          "clients on the other API process", flush=True)
    roles = ["sse", "ws"] if args.clients == "both" else [args.clients]
    pooled: dict[str, list[int]] = {role: [] for role in roles}
    reps: list[dict[str, Any]] = []
    with scratch("postgresql", args.database_url, prefix="jtbench_events", keep=args.keep) as url, \
            tempfile.TemporaryDirectory() as tmp:

        async def make_key() -> str:
            db = Database(url, pool_size=1)
            async with db.write() as conn:
                raw, _ = await create_key(conn, tenant="bench", admin=False,
                                          now=datetime.now(UTC))
            await db.dispose()
            return raw

        key = asyncio.run(make_key())
        with api_server(url), api_server(url) as url_b:
            for rep in range(1, args.reps + 1):
                before = machine()
                got = asyncio.run(one_rep(url, url_b, key, args.n, args.rate, tmp, roles))
                print(f"rep {rep}: ({contention(before, machine())})", flush=True)
                figures = {}
                for role, values in got.items():
                    figures[role] = summary(values)
                    show(f"{role} (commit->recv)", figures[role])
                    pooled[role].extend(values)
                reps.append(figures)
    print("pooled:", flush=True)
    totals = {role: summary(values) for role, values in pooled.items()}
    for role, stats in totals.items():
        show(f"{role} (commit->recv)", stats)
    result = {"reps": reps, "pooled": totals}
    worst = max(stats["p99"] for stats in totals.values())
    print(f"P5 target p99 < 5 ms: {'met' if worst < 5 else 'NOT met'} (worst p99 {worst:.3f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
