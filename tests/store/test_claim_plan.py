"""The claim query's plan must not depend on table statistics (docs/targets.md P7).

A queue table that keeps finished jobs tempts the planner, once ANALYZE has run, to walk
the primary key past every finished row. The claim must use the partial index over
runnable rows whatever the statistics say.
"""

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from jobtrack.domain.status import JobStatus
from jobtrack.store.claim import claim_query

pytestmark = pytest.mark.postgres

TERMINAL_ROWS = 200_000
PENDING_ROWS = 2_000


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _fill(conn: psycopg.Connection[Any]) -> None:
    # bulk rows straight in SQL: this test is about the planner, not the writer
    conn.execute(
        """
        INSERT INTO jobs (id, tenant, queue_name, name, status, step, data, phase_count,
                          children_left, attempt, max_attempts, priority, run_at,
                          cancel_requested, created_at, updated_at, completed_at)
        SELECT gen_random_uuid(), 't', 'q', 'noop',
               CASE WHEN g <= %(terminal)s THEN %(done)s ELSE %(pending)s END,
               'queued', '{}', 0, 0, 1, 1, 0, now() - interval '1 hour', false,
               now(), now(), CASE WHEN g <= %(terminal)s THEN now() END
        FROM generate_series(1, %(total)s) AS g
        """,
        {"terminal": TERMINAL_ROWS, "total": TERMINAL_ROWS + PENDING_ROWS,
         "done": JobStatus.COMPLETED.value, "pending": JobStatus.PENDING.value},
    )
    conn.execute("ANALYZE jobs")


def _explain(conn: psycopg.Connection[Any], names: list[str] | None) -> dict[str, Any]:
    query = claim_query("q", datetime.now(UTC), 100, names)
    compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {compiled}").fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return dict(plan[0]["Plan"])


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


@pytest.mark.parametrize("names", [None, ["noop", "other"]])
def test_claim_uses_partial_index_after_analyze(pg_url: str, names: list[str] | None) -> None:
    with psycopg.connect(_plain(pg_url), autocommit=True) as conn:
        _fill(conn)
        nodes = _nodes(_explain(conn, names))
    scans = [n for n in nodes if "Scan" in n["Node Type"]]
    assert scans, nodes
    assert all(n.get("Index Name") == "ix_jobs_claim" for n in scans), scans
    assert not any(n["Node Type"] == "Seq Scan" for n in nodes)
    assert not any(n["Node Type"] == "Sort" for n in nodes), "claim order must come from the index"
