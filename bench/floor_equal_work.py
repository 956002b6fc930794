"""P2: the equal-work floor. jobtrack's database work per job, from plain psycopg 3.

Same PostgreSQL, same schema (a scratch database migrated with jobtrack's own migration:
same tables, indexes, CHECK constraints and the statement-level NOTIFY trigger on
``events``), and the same rows written per job as jobtrack's worker writes them
(``jobtrack/store/claim.py``, ``writer.py``, ``jobs.py``, ``events.py``):

- enqueue (one transaction, statements of 5,000 rows like ``App.enqueue_many``): the
  tenant row if missing; per job one ``jobs`` row and one ``job.created`` event carrying
  the job's wire form (the history row pending);
- claim (one transaction per batch of up to ``--batch``): the runnable rows through the
  partial index ``ix_jobs_claim`` in claim order, ``FOR UPDATE SKIP LOCKED``; per job the
  ``jobs`` row update (status, step, worker, lease, updated_at, started_at) and one
  ``job.updated`` event pending -> running (history row) with the changed fields;
- complete (one transaction per batch): per job the ``jobs`` row update (status, stats,
  worker and lease cleared, updated_at, completed_at), guarded by the same ownership
  check (still running under this worker), and one ``job.completed`` event (history row).

When the schema has ``jobs.version`` (migration 0002), both updates move it by one, as
jobtrack's writer does. No flow counters or parent rows move: these jobs have no flow, as
in the jobtrack runs.
What the floor leaves out is Python: each transaction is ONE statement (data-modifying
CTEs; the event JSON is built by the server with ``row_to_json``, byte-compatible with
jobtrack's), sent in autocommit, so a batch costs 2 round trips and 2 commits. jobtrack's
worker reads whole rows and locks before writing (SELECT ... FOR UPDATE, then UPDATE,
then INSERT: 4-5 round trips per transaction); the floor folds those reads into the writes.

Measured like a peer (one JSON line in the harness's Result format): bulk enqueue rate,
"proc" from the start of the claim/complete loop, steady = first -> last stored
``completed_at``, e2e from enqueue start; verified: N completed, N ``job.completed``
events, 3N history rows.

    PEERS_BENCH_DIR=/tmp/peers/bench .venv/bin/python bench/floor_equal_work.py --n 20000
    ... --batch 10 --variant b10
"""

import argparse
import os
import secrets
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from jobtrack.store import migrate

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import harness

common, pgcost = harness.load()

DB = "bench_jobtrack_floor"
TENANT, QUEUE, NAME = "bench", "bench", "noop"
ENQUEUE_CHUNK = 5000  # jobtrack.queue.app.ENQUEUE_CHUNK
LEASE = timedelta(seconds=30)  # jobtrack's default lease_seconds

EVENT_COLUMNS = ("tenant, type, at, job_id, flow_id, queue_name, from_status, to_status, "
                 "step, attempt, actor, data")

TENANT_ROW = ("INSERT INTO tenants (name, created_at) VALUES (%(tenant)s, %(now)s) "
              "ON CONFLICT (name) DO NOTHING")

ENQUEUE = f"""
WITH j AS (
    INSERT INTO jobs (id, tenant, queue_name, name, status, step, data, result, error, stats,
                      progress_done, progress_total, phase_count, flow_id, parent_job_id,
                      children_left, attempt, max_attempts, priority, run_at,
                      cancel_requested, idempotency_key, worker_id, lease_expires_at,
                      created_at, updated_at, started_at, completed_at)
    SELECT v.id, %(tenant)s, %(queue)s, %(name)s, 'pending', 'queued', v.data, NULL, NULL,
           NULL, NULL, NULL, 0, NULL, NULL, 0, 1, 1, 0, %(now)s, false, NULL, NULL, NULL,
           %(now)s, %(now)s, NULL, NULL
    FROM unnest(%(ids)s::uuid[], %(data)s::text[]::json[]) AS v(id, data)
    RETURNING id, tenant, queue_name, name, data
)
INSERT INTO events ({EVENT_COLUMNS})
SELECT j.tenant, 'job.created', %(now)s, j.id, NULL, j.queue_name, NULL, 'pending', 'queued',
       1, %(actor)s,
       (SELECT row_to_json(d) FROM (SELECT
            j.id AS "jobId", j.queue_name AS "queueName", j.name AS name,
            'pending'::text AS status, 'queued'::text AS step, j.data AS data,
            NULL::json AS result, NULL::json AS error, NULL::json AS stats,
            NULL::json AS progress, '[]'::json AS phases, NULL::uuid AS "flowId",
            NULL::uuid AS "parentJobId", 1 AS attempt, 1 AS "maxAttempts", 0 AS priority,
            %(iso)s::text AS "runAt", false AS "cancelRequested", %(iso)s::text AS "createdAt",
            %(iso)s::text AS "updatedAt", NULL::text AS "startedAt",
            NULL::text AS "completedAt") AS d)
FROM j
"""

CLAIM_SELECT = """
    SELECT id FROM jobs
    WHERE queue_name = %(queue)s AND status = 'pending' AND children_left = 0
      AND run_at <= %(now)s AND name = ANY(%(names)s)
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
"""

CLAIM = f"""
WITH c AS ({CLAIM_SELECT}),
u AS (
    UPDATE jobs AS j
    SET status = 'running', step = 'running', worker_id = %(worker)s,
        lease_expires_at = %(lease)s, updated_at = %(now)s, started_at = %(now)s{{bump}}
    FROM c WHERE j.id = c.id
    RETURNING j.id, j.tenant, j.queue_name, j.name, j.flow_id, j.attempt, j.data
),
e AS (
    INSERT INTO events ({EVENT_COLUMNS})
    SELECT u.tenant, 'job.updated', %(now)s, u.id, u.flow_id, u.queue_name, 'pending',
           'running', 'running', u.attempt, %(actor)s,
           (SELECT row_to_json(d) FROM (SELECT
                u.id AS "jobId", u.queue_name AS "queueName", u.name AS name,
                %(iso)s::text AS "startedAt", 'running'::text AS status,
                'running'::text AS step, %(iso)s::text AS "updatedAt") AS d)
    FROM u
)
SELECT id, name, data FROM u
"""

COMPLETE = f"""
WITH u AS (
    UPDATE jobs AS j
    SET status = 'completed', stats = %(stats)s::json, worker_id = NULL,
        lease_expires_at = NULL, updated_at = %(now)s, completed_at = %(now)s{{bump}}
    WHERE j.id = ANY(%(ids)s) AND j.status = 'running' AND j.worker_id = %(worker)s
    RETURNING j.id, j.tenant, j.queue_name, j.name, j.flow_id, j.attempt, j.stats
)
INSERT INTO events ({EVENT_COLUMNS})
SELECT u.tenant, 'job.completed', %(now)s, u.id, u.flow_id, u.queue_name, 'running',
       'completed', 'running', u.attempt, %(actor)s,
       (SELECT row_to_json(d) FROM (SELECT
            u.id AS "jobId", u.queue_name AS "queueName", u.name AS name, u.stats AS stats,
            'completed'::text AS status, %(iso)s::text AS "completedAt",
            %(iso)s::text AS "updatedAt") AS d)
FROM u
"""


#: jobs.version (migration 0002, if the schema has it): every change of a row moves it by one
BUMP = ", version = j.version + 1"


def statements(conn: psycopg.Connection[Any]) -> tuple[str, str, bool]:
    """CLAIM and COMPLETE for the migrated schema (with the version bump when it exists)."""
    has_version = conn.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_name = 'jobs' AND column_name = 'version'").fetchone()[0] > 0  # type: ignore[index]
    bump = BUMP if has_version else ""
    return CLAIM.format(bump=bump), COMPLETE.format(bump=bump), has_version


def iso(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def reset(url: str) -> None:
    with psycopg.connect(common.pg_dsn("postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    migrate.upgrade(url)  # jobtrack's own schema: tables, indexes, NOTIFY trigger


def time_ordered_ids(n: int) -> list[uuid.UUID]:
    """UUIDv7-shaped, increasing ids (jobtrack's are too: they land at the index's end)."""
    base = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | 0b10 << 62
    return [uuid.UUID(int=base | i) for i in range(n)]


def enqueue(conn: psycopg.Connection[Any], n: int) -> tuple[float, float]:
    ids = time_ordered_ids(n)
    data = [f'{{"i":{i}}}' for i in range(n)]
    ts = time.time()
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    common_params = {"tenant": TENANT, "queue": QUEUE, "name": NAME, "now": now,
                     "iso": iso(now), "actor": f"app:{TENANT}"}
    with conn.transaction():
        conn.execute(TENANT_ROW, common_params)
        for start in range(0, n, ENQUEUE_CHUNK):
            conn.execute(ENQUEUE, {**common_params, "ids": ids[start:start + ENQUEUE_CHUNK],
                                   "data": data[start:start + ENQUEUE_CHUNK]})
    return ts, time.perf_counter() - t0


def cycle(url: str, batch: int, claim: str, complete: str) -> int:
    """Claim a batch, 'run' it, complete it; until the queue is empty. Returns jobs done."""
    worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"  # jobtrack's shape
    actor = f"worker:{worker}"
    stats = '{"durationMs":0.005}'
    done = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            now = datetime.now(UTC)
            rows = conn.execute(claim, {
                "queue": QUEUE, "names": [NAME], "now": now, "limit": batch,
                "worker": worker, "lease": now + LEASE, "iso": iso(now), "actor": actor,
            }).fetchall()
            if not rows:
                return done
            ids = [r[0] for r in rows]  # (the no-op jobs would run here, with r[2] as data)
            now = datetime.now(UTC)
            conn.execute(complete, {"ids": ids, "stats": stats, "now": now, "iso": iso(now),
                                    "worker": worker, "actor": actor})
            done += len(ids)


def scans(node: Any) -> list[str]:
    """The scan nodes of an EXPLAIN (FORMAT JSON) plan, e.g. 'Index Scan ix_jobs_claim'."""
    out: list[str] = []
    if isinstance(node, list):
        for x in node:
            out += scans(x)
    elif isinstance(node, dict):
        if "Scan" in node.get("Node Type", ""):
            out.append(f"{node['Node Type']} {node.get('Index Name', node.get('Relation Name'))}")
        for v in node.values():
            if isinstance(v, (list, dict)):
                out += scans(v)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--rep", type=int, default=1)
    p.add_argument("--batch", type=int, default=100, help="claim (and completion) batch")
    p.add_argument("--variant", default=None, help="default: b<batch>")
    p.add_argument("--out", default=None)
    a = p.parse_args()

    url = common.pg_dsn(DB)
    res = common.Result(peer="equal-work-floor", variant=a.variant or f"b{a.batch}", n=a.n,
                        rep=a.rep, versions={**common.versions("psycopg", "psycopg-binary"),
                                             "jobtrack_git": harness.git_revision()})
    res.enqueue_api = ("1 txn, INSERT jobs + job.created events per 5,000 rows "
                       "(unnest, one statement)")

    def body() -> None:
        reset(url)
        with psycopg.connect(url, autocommit=True) as conn:
            res.settings = {
                "worker": "in-process loop, 1 connection, autocommit",
                "concurrency": f"batch {a.batch}",
                "claim_batch": a.batch, "complete_batch": a.batch,
                "store": "PG",
                "per_batch": "claim: 1 statement + commit; complete: 1 statement + commit",
                "schema": "jobtrack migration " + str(migrate.head()),
                **{k: conn.execute(f"SHOW {k}").fetchone()[0]  # type: ignore[index]
                   for k in ("fsync", "synchronous_commit", "server_version")},
            }
            claim, complete, has_version = statements(conn)
            res.settings["jobs_version_bumped"] = has_version
            res.enqueue_start_ts, res.enqueue_s = enqueue(conn, a.n)
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + CLAIM_SELECT, {
                "queue": QUEUE, "names": [NAME], "now": datetime.now(UTC), "limit": a.batch,
            }).fetchone()[0]  # type: ignore[index]
            res.settings["claim_scan"] = sorted(set(scans(plan)))
            before = conn.execute(pgcost.SQL).fetchone()
            res.worker_spawn_ts = time.time()
            t0 = time.perf_counter()
            done = cycle(url, a.batch, claim, complete)
            res.settings["cycle_s"] = round(time.perf_counter() - t0, 4)
            time.sleep(1.5)  # let the closed backend's statistics land
            res.settings["db_cost_processing"] = pgcost.cost(
                before, conn.execute(pgcost.SQL).fetchone(), a.n)
            first, last = conn.execute(
                "SELECT min(completed_at), max(completed_at) FROM jobs").fetchone()  # type: ignore[misc]
            res.first_done_ts, res.last_done_ts = first.timestamp(), last.timestamp()
            statuses = dict(conn.execute(
                "SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
            events, history = conn.execute(
                "SELECT count(*) FILTER (WHERE type = 'job.completed'),"
                " count(*) FILTER (WHERE to_status IS NOT NULL) FROM events").fetchone()  # type: ignore[misc]
            res.verified_done = statuses.get("completed", 0)
            res.verified_failed = sum(c for s, c in statuses.items() if s != "completed")
            res.ok = (done == a.n and res.verified_done == a.n and res.verified_failed == 0
                      and events == a.n and history == 3 * a.n)
            res.notes.append(f"statuses {statuses}, job.completed events {events}, "
                             f"history rows {history}, loop counted {done}")
            if not res.ok:
                res.error = (f"store has {statuses}, {events} job.completed events, {history}"
                             f" history rows; expected {a.n} completed, {a.n}, {3 * a.n}")

    common.run_guarded(res, a.out, body)


if __name__ == "__main__":
    main()
