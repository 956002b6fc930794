"""P6: a flow with 100,000 children costs the same per child as a flow with 1,000, and its
summary (``GET /flows/{id}``) stays under 10 ms at both sizes (``docs/targets.md``).

On a scratch PostgreSQL database (created on the server of ``--database-url``, dropped
after):

1. create one big flow (root + ``--big`` children on one queue) and ``--segments`` small
   flows (root + ``--small`` children each, each on its own queue), each in one
   transaction: timed;
2. read each flow's summary ``--reads`` times through the store (``get_flow``, one row)
   and through the HTTP app (``GET /flows/{id}`` with auth and rate limiting, over an
   in-process ASGI transport): median and p99, before and after the drain;
3. drain side by side: the big flow in ``--segments`` equal slices, each slice followed by
   one whole small flow and by as many plain jobs (no flow: the baseline showing what the
   flow bookkeeping itself costs), so that all three meet the same machine state. Each child is
   claimed and completed through the real code a worker runs: ``store.claim.claim`` in
   one transaction per batch of ``--batch``, then ``queue.outcomes.write_outcomes`` (the
   store's ``apply``: job rows, parent countdown, flow counters, events) per batch;
4. per-child cost = slice time / children in it; the ratio is the median over the big
   flow's slices divided by the median over the small flows (target at most 1.3);
5. verified: every flow completed, counters equal a recount of its job rows.

    .venv/bin/python bench/bench_flows.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from scratch import scratch  # bench/: the script's own folder
from sqlalchemy import text

from jobtrack.api.app import create_app
from jobtrack.domain.flows import Flow, FlowNode
from jobtrack.domain.ids import new_id
from jobtrack.domain.records import new_job
from jobtrack.domain.status import FlowStatus, JobStatus
from jobtrack.queue.outcomes import Outcome, write_outcomes
from jobtrack.settings import Settings
from jobtrack.store import flows as store_flows
from jobtrack.store.claim import claim
from jobtrack.store.engine import Database
from jobtrack.store.jobs import insert_jobs
from jobtrack.store.keys import create_key

TENANT = "bench"


def now() -> datetime:
    return datetime.now(UTC)


async def create(db: Database, settings: Settings, queue: str, children: int) -> tuple[Flow, float]:
    root = FlowNode(name="root", queue_name=f"{queue}-root", children=[
        FlowNode(name="child", queue_name=queue, data={"i": i}) for i in range(children)])
    started = time.perf_counter()
    async with db.write() as conn:
        flow, _ = await store_flows.create_flow(
            conn, root, tenant=TENANT, flowname=queue, now=now(), actor="bench",
            max_depth=settings.flow_max_depth, max_jobs=settings.flow_max_jobs,
            default_max_attempts=1)
    return flow, time.perf_counter() - started


async def plain_jobs(db: Database, queue: str, n: int) -> None:
    """``n`` jobs outside any flow: the baseline's work."""
    t = now()
    async with db.write() as conn:
        await insert_jobs(conn, [new_job(id=new_id(), tenant=TENANT, queue_name=queue,
                                         name="plain", now=t, data={"i": i})
                                 for i in range(n)], actor="bench")


async def drain(db: Database, queue: str, count: int, batch: int) -> tuple[int, float]:
    """Claim and complete up to ``count`` jobs of ``queue`` like a worker: one claim
    transaction and one outcome transaction per batch. Returns (done, seconds)."""
    done = 0
    started = time.perf_counter()
    while done < count:
        t = now()
        async with db.write() as conn:
            jobs = await claim(conn, queues=[queue], worker_id="bench", limit=min(batch,
                               count - done), now=t, lease_until=t + timedelta(seconds=60))
        if not jobs:
            break
        written = await write_outcomes(
            db, [Outcome(job=j, status=JobStatus.COMPLETED, result=None) for j in jobs],
            worker_id="bench", actor="worker:bench")
        assert written.discarded == 0
        done += len(jobs)
    return done, time.perf_counter() - started


async def timed(fn: Callable[[], Awaitable[Any]], reads: int) -> tuple[float, float]:
    """Median and p99 latency of ``fn`` in milliseconds."""
    for _ in range(min(20, reads)):  # warm-up: connections, statement caches
        await fn()
    samples = []
    for _ in range(reads):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def summary_latency(db: Database, client: httpx.AsyncClient, key: str, flow: Flow,
                          reads: int) -> dict[str, tuple[float, float]]:
    async def store_read() -> None:
        async with db.read() as conn:
            assert await store_flows.get_flow(conn, flow.id, tenant=TENANT) is not None

    async def http_read() -> None:
        answer = await client.get(f"/flows/{flow.id}", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text

    return {"store": await timed(store_read, reads), "http": await timed(http_read, reads)}


async def verify(db: Database, flow_id: str) -> None:
    async with db.read() as conn:
        flow = await store_flows.get_flow(conn, flow_id, tenant=None)
        rows = await conn.execute(text(
            "SELECT status, count(*) FROM jobs WHERE flow_id = :f GROUP BY status"),
            {"f": flow_id})
        counted = {s: 0 for s in JobStatus} | {JobStatus(s): n for s, n in rows}
    assert flow is not None and flow.status is FlowStatus.COMPLETED, flow
    assert flow.progress.counts() == counted, (flow.progress, counted)


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(database_url=url, rate_limit_per_minute=1_000_000_000,
                        flow_max_jobs=max(200_000, args.big + 1))
    db = Database(url, pool_size=4)
    app = create_app(settings)
    out: dict[str, Any] = {}
    try:
        big, out["create_big"] = await create(db, settings, "big", args.big)
        smalls = []
        create_small = []
        for i in range(args.segments):
            flow, seconds = await create(db, settings, f"small-{i}", args.small)
            smalls.append(flow)
            create_small.append(seconds)
            await plain_jobs(db, f"plain-{i}", args.small)
        out["create_small"] = statistics.median(create_small)
        async with db.write() as conn:
            key, _ = await create_key(conn, tenant=TENANT, admin=False, now=now())
        async with db.read() as conn:
            await conn.execute(text("ANALYZE"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                out["read_before"] = {
                    "big": await summary_latency(db, client, key, big, args.reads),
                    "small": await summary_latency(db, client, key, smalls[0], args.reads)}
                slice_size = args.big // args.segments
                big_costs, small_costs, plain_costs = [], [], []
                for i in range(args.segments):
                    n, seconds = await drain(db, "big", slice_size, args.batch)
                    assert n == slice_size, n
                    big_costs.append(seconds / n)
                    n, seconds = await drain(db, f"small-{i}", args.small, args.batch)
                    assert n == args.small, n
                    small_costs.append(seconds / n)
                    n, seconds = await drain(db, f"plain-{i}", args.small, args.batch)
                    assert n == args.small, n
                    plain_costs.append(seconds / n)
                    print(f"  slice {i + 1}/{args.segments}: big {big_costs[-1] * 1e6:7.1f} "
                          f"us/child, small {small_costs[-1] * 1e6:7.1f} us/child, plain "
                          f"{plain_costs[-1] * 1e6:7.1f} us/job", flush=True)
                for flow in (big, *smalls):  # the roots are runnable now
                    assert (await drain(db, flow.queue_name, 1, 1))[0] == 1
                    await verify(db, flow.id)
                out["read_after"] = {
                    "big": await summary_latency(db, client, key, big, args.reads),
                    "small": await summary_latency(db, client, key, smalls[0], args.reads)}
        out["big_costs"], out["small_costs"] = big_costs, small_costs
        out["plain_costs"] = plain_costs
    finally:
        await db.dispose()
    return out


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    big = statistics.median(r["big_costs"])
    small = statistics.median(r["small_costs"])
    ratio = big / small
    print()
    print(f"P6 flows on PostgreSQL: big = {args.big:,} children, small = {args.small:,} "
          f"children x {args.segments}, batch {args.batch}")
    print(f"{'measure':<44}{'big':>14}{'small':>14}{'target':>14}")
    print(f"{'create (one transaction), s':<44}{r['create_big']:>14.2f}"
          f"{r['create_small']:>14.3f}{'':>14}")
    print(f"{'claim+complete per child (median), us':<44}{big * 1e6:>14.1f}"
          f"{small * 1e6:>14.1f}{'':>14}")
    plain = statistics.median(r["plain_costs"])
    print(f"{'  same for plain jobs (no flow), us':<44}{'':>14}{plain * 1e6:>14.1f}{'':>14}")
    print(f"{'  slowest slice, us':<44}{max(r['big_costs']) * 1e6:>14.1f}"
          f"{max(r['small_costs']) * 1e6:>14.1f}{'':>14}")
    print(f"{'per-child ratio big / small':<44}{ratio:>14.2f}{'':>14}{'<= 1.3':>14}")
    for when in ("before", "after"):
        reads = r[f"read_{when}"]
        for path in ("store", "http"):
            b_med, b_p99 = reads["big"][path]
            s_med, s_p99 = reads["small"][path]
            label = f"summary via {path} ({when} drain) med/p99, ms"
            print(f"{label:<44}{f'{b_med:.2f}/{b_p99:.2f}':>14}{f'{s_med:.2f}/{s_p99:.2f}':>14}"
                  f"{'< 10':>14}")
    ok = ratio <= 1.3 and all(
        r[f"read_{w}"][size][path][0] < 10
        for w in ("before", "after") for size in ("big", "small") for path in ("store", "http"))
    print(f"P6 {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server (a scratch database is made on it)")
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--segments", type=int, default=10,
                        help="slices of the big flow, and small flows, drained in turn")
    parser.add_argument("--batch", type=int, default=100, help="jobs per claim / outcome batch")
    parser.add_argument("--reads", type=int, default=500, help="summary reads per measure")
    args = parser.parse_args()
    if args.big % args.segments:
        parser.error("--big must be a multiple of --segments")
    with scratch("postgresql", args.database_url, prefix="jtbench_flows") as url:
        report(args, asyncio.run(bench(url, args)))


if __name__ == "__main__":
    main()
