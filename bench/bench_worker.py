"""Worker throughput: bulk-enqueue N no-op jobs, drain them with one worker, verify.

Per backend (SQLite file with WAL; PostgreSQL when ``--database-url`` names a server)
and per repetition, on a fresh database each time:

1. ``app.enqueue_many`` inserts N jobs (with their ``job.created`` events): timed;
2. one worker drains them: a real ``jobtrack worker noop_app:app`` subprocess
   (``--mode subprocess``, the default) and/or an in-process ``Worker``;
3. the figures come from the stored timestamps: drain = last ``completed_at`` minus the
   worker's start; end to end = last ``completed_at`` minus the enqueue's start; steady =
   last ``completed_at`` minus first ``started_at``;
4. verified: exactly N jobs completed, N ``job.completed`` events, 3N history rows.

PostgreSQL: a scratch database ``jtbench_<random>`` is created on the server of
``--database-url`` for each run and dropped after it.

    .venv/bin/python bench/bench_worker.py --n 20000 --reps 3 \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scratch import scratch  # bench/: the script's own folder
from sqlalchemy import text

from jobtrack.queue.app import App
from jobtrack.queue.worker import Worker
from jobtrack.settings import Settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


async def _left(app: App) -> int:
    async with app.db.read() as conn:
        return int(await conn.scalar(text(
            "SELECT (SELECT count(*) FROM jobs WHERE status = 'pending' AND children_left = 0)"
            " + (SELECT count(*) FROM jobs WHERE status = 'running')")) or 0)


async def _figures(app: App, n: int) -> dict[str, Any]:
    async with app.db.read() as conn:
        row = (await conn.execute(text(
            "SELECT count(*) FILTER (WHERE status = 'completed') AS completed, count(*) AS total,"
            " min(started_at) AS first, max(completed_at) AS last FROM jobs"
        ) if app.db.dialect == "postgresql" else text(
            "SELECT sum(status = 'completed') AS completed, count(*) AS total,"
            " min(started_at) AS first, max(completed_at) AS last FROM jobs"))).one()
        done_events = await conn.scalar(text(
            "SELECT count(*) FROM events WHERE type = 'job.completed'"))
        history = await conn.scalar(text(
            "SELECT count(*) FROM events WHERE to_status IS NOT NULL"))
    ok = row.completed == n and row.total == n and done_events == n and history == 3 * n
    return {"completed": row.completed, "total": row.total, "events": done_events,
            "history": history, "verified": ok, "first": _ts(row.first), "last": _ts(row.last)}


def _ts(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite answers raw text to a text() query
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _drain_subprocess(app: App, url: str, concurrency: int, timeout: float) -> datetime:
    cmd = [sys.executable, "-m", "jobtrack", "--database-url", url, "worker", "noop_app:app",
           "--concurrency", str(concurrency), "--no-migrate", "--log-level", "WARNING"]
    start = datetime.now(UTC)
    proc = subprocess.Popen(cmd, cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)},
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while await _left(app) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return start


async def _drain_inprocess(app: App, n: int, concurrency: int, timeout: float) -> datetime:
    start = datetime.now(UTC)
    worker = Worker(app, concurrency=concurrency)
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    while worker.stats.completed < n and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.005)
    worker.stop()
    await task
    return start


async def one_run(url: str, backend: str, mode: str, n: int, concurrency: int,
                  timeout: float) -> dict[str, Any]:
    from noop_app import app as bench_app

    app = App(url, tenant="bench")
    app.tasks = bench_app.tasks
    async with app:
        t0 = datetime.now(UTC)
        p0 = time.perf_counter()
        await app.enqueue_many("noop", ({"i": i} for i in range(n)))
        enqueue_s = time.perf_counter() - p0
        if mode == "subprocess":
            start = await _drain_subprocess(app, url, concurrency, timeout)
        else:
            start = await _drain_inprocess(app, n, concurrency, timeout)
        fig = await _figures(app, n)
    drain_s = (fig["last"] - start).total_seconds()
    return {
        "backend": backend, "mode": mode, "n": n, "concurrency": concurrency,
        "enqueue_per_s": round(n / enqueue_s), "drain_per_s": round(n / drain_s),
        "end_to_end_per_s": round(n / (fig["last"] - t0).total_seconds()),
        "steady_per_s": round(n / (fig["last"] - fig["first"]).total_seconds()),
        "verified": fig["verified"], "counts": {k: fig[k] for k in
                                                ("completed", "total", "events", "history")},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--concurrency", type=int,
                   default=Settings.model_fields["worker_concurrency"].default,
                   help="worker concurrency (default: jobtrack's default)")
    p.add_argument("--database-url", help="a PostgreSQL server (scratch databases on it)")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--mode", choices=["subprocess", "inprocess", "both"], default="subprocess")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--out", help="append one JSON line per run to this file")
    args = p.parse_args()
    backends = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.database_url
                                                         else [])
    modes = ["subprocess", "inprocess"] if args.mode == "both" else [args.mode]
    results: list[dict[str, Any]] = []
    for rep in range(args.reps):  # interleaved: rep 1 of everything, then rep 2, ...
        for backend in backends:
            for mode in modes:
                with scratch(backend, args.database_url) as url:
                    r = asyncio.run(one_run(url, backend, mode, args.n, args.concurrency,
                                            args.timeout))
                r["rep"] = rep + 1
                results.append(r)
                print(json.dumps(r), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(r) + "\n")
    print(f"\nmedians of {args.reps} run(s), N = {args.n}, concurrency {args.concurrency}")
    print(f"{'backend':<11}{'mode':<12}{'enqueue/s':>11}{'drain/s':>10}{'e2e/s':>9}"
          f"{'steady/s':>10}  verified")
    for backend in backends:
        for mode in modes:
            rs = [r for r in results if r["backend"] == backend and r["mode"] == mode]
            med = {k: round(statistics.median(r[k] for r in rs)) for k in
                   ("enqueue_per_s", "drain_per_s", "end_to_end_per_s", "steady_per_s")}
            print(f"{backend:<11}{mode:<12}{med['enqueue_per_s']:>11}{med['drain_per_s']:>10}"
                  f"{med['end_to_end_per_s']:>9}{med['steady_per_s']:>10}  "
                  f"{all(r['verified'] for r in rs)}")
    if not all(r["verified"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
