"""Worker CPU per job: an in-process ``Worker`` drains N no-op jobs; the figure is the
process's CPU time (``time.process_time``) from the worker's start to the last completion,
divided by N, at each concurrency given (target P7: at most 60 us at batches of 100+).

On a scratch PostgreSQL database per run (created on the server of ``--database-url``):

    .venv/bin/python bench/bench_worker_cpu.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres --n 5000 --concurrency 10,100
"""

import argparse
import asyncio
import time
from typing import Any

from scratch import scratch  # bench/: the script's own folder

from jobtrack.queue.app import App
from jobtrack.queue.worker import Worker
from jobtrack.settings import Settings


async def drain(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds per job, jobs per second) of one worker draining ``n`` no-op jobs."""
    app = App(settings=Settings(database_url=url))

    @app.task(queue="bench")
    async def noop(ctx: Any) -> None:
        return None

    try:
        await app.enqueue_many("noop", [{} for _ in range(n)])
        worker = Worker(app, queues=["bench"], concurrency=concurrency)
        cpu, wall = time.process_time(), time.perf_counter()
        task = asyncio.create_task(worker.run())
        while worker.stats.completed < n:
            await asyncio.sleep(0.02)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        worker.stop()
        await task
        return cpu / n, n / wall
    finally:
        await app.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url", required=True, help="a PostgreSQL server")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--concurrency", default="10,100")
    args = ap.parse_args()
    print("| concurrency | CPU per job (us) | jobs/s |")
    print("|---:|---:|---:|")
    for c in (int(x) for x in args.concurrency.split(",")):
        with scratch("postgresql", args.database_url, prefix="jtcpu") as url:
            per_job, rate = asyncio.run(drain(url, args.n, c))
        print(f"| {c} | {per_job * 1e6:.0f} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
