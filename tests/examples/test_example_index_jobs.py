"""``examples/index_jobs``: seed 004's indexing API run for real (uvicorn subprocess)
with a real ``jobtrack worker`` on the test's database. Asserts the seed's validation
strategy item by item (docs/examples/index_jobs.md names them)."""

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from examples.index_jobs.tasks import QUEUE, SYMBOLS_PER_FILE
from jobtrack import JobStatus
from support.keys import bearer
from support.processes import free_port, process, wait_http, working

KEYS = {"alice": "alice-key", "bob": "bob-key", "carol": "carol-key"}
LIMIT = 100
TERMINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


def auth(user: str) -> dict[str, str]:
    return bearer(KEYS[user])


def poll(http: httpx.Client, job_id: str, user: str = "alice") -> list[dict[str, Any]]:
    """GET /jobs/{id} until terminal: every answer."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while not seen or seen[-1]["status"] not in TERMINAL:
        assert time.monotonic() < deadline, seen[-1:]
        r = http.get(f"/jobs/{job_id}", headers=auth(user))
        assert r.status_code == 200, r.text
        seen.append(r.json())
        time.sleep(0.2)
    return seen


def test_index_jobs_service_with_a_real_worker(db_url: str, tmp_path: Path) -> None:
    env = {"JOBTRACK_DATABASE_URL": db_url,
           "INDEX_API_KEYS": ",".join(f"{k}:{u}" for u, k in KEYS.items()),
           "INDEX_RATE_LIMIT_PER_HOUR": str(LIMIT)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "service.log"
    service = ["uvicorn", "--factory", "examples.index_jobs.service:create_app",
               "--host", "127.0.0.1", "--port", str(port)]
    with working(db_url, "examples.index_jobs.tasks:app", tmp_path, QUEUE) as worker, \
            process([sys.executable, "-m", *service], log, env) as svc, \
            httpx.Client(base_url=base, timeout=10) as http:
        wait_http(base, svc, log)
        # POST /index answers {jobId, status: "pending"} at once
        created = http.post("/index", headers=auth("alice"),
                            json={"repository": "acme/api", "ref": "main",
                                  "commit_sha": "9f1c2e7"})
        assert created.status_code == 202, created.text
        assert set(created.json()) == {"jobId", "status"}
        assert created.json()["status"] == JobStatus.PENDING
        job_id = created.json()["jobId"]
        # without commit_sha still works; an unknown repository fails in the worker
        missing = http.post("/index", headers=auth("alice"),
                            json={"repository": "acme/gone"}).json()["jobId"]
        assert worker.poll() is None
        done = poll(http, job_id)
        failed = poll(http, missing)[-1]

        # RLS: another user cannot see it (404, like a missing job); auth is required
        assert http.get(f"/jobs/{job_id}", headers=auth("bob")).status_code == 404
        assert http.get("/jobs/not-a-uuid", headers=auth("alice")).status_code == 404
        anonymous = http.get(f"/jobs/{job_id}")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert http.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer nope"}
                        ).status_code == 401
        assert http.post("/index", headers=auth("alice"), json={"ref": "main"}
                         ).status_code == 422
        stats = http.get("/stats", headers=auth("alice")).json()
        bob_stats = http.get("/stats", headers=auth("bob")).json()

        # every request consumes the key's hourly quota; the one past it is a 429
        remaining = [int(http.get(f"/jobs/{job_id}", headers=auth("carol"))
                         .headers["x-ratelimit-remaining"]) for _ in range(LIMIT)]
        over = http.get(f"/jobs/{job_id}", headers=auth("carol"))
        still_alice = http.get(f"/jobs/{job_id}", headers=auth("alice"))

    # pending -> running -> completed, never backwards, with timestamps and stats
    order = [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED]
    statuses = [JobStatus(s["status"]) for s in done]
    assert statuses == sorted(statuses, key=order.index)
    final = done[-1]
    assert final["status"] == JobStatus.COMPLETED and final["error_message"] is None
    assert final["commit_sha"] == "9f1c2e7" and final["ref"] == "main"
    assert final["created_at"] <= final["started_at"] <= final["completed_at"]
    assert final["stats"] == {"files_indexed": 120, "symbols_extracted": 120 * SYMBOLS_PER_FILE}
    for seen in done:
        if seen["status"] == JobStatus.PENDING:
            assert seen["started_at"] is None and seen["completed_at"] is None
        if seen["status"] == JobStatus.RUNNING:
            assert seen["started_at"] is not None and seen["completed_at"] is None
    # failed: completed_at and the error message are stored
    assert failed["status"] == JobStatus.FAILED
    assert failed["error_message"] == "repository 'acme/gone' not found"
    assert failed["commit_sha"] is None and failed["completed_at"] is not None

    assert stats["counts"][JobStatus.COMPLETED] == 1 and stats["counts"][JobStatus.FAILED] == 1
    assert stats["failure_rate"] == 0.5 and stats["stuck"] == 0
    assert sum(bob_stats["counts"].values()) == 0

    assert remaining == list(range(LIMIT - 1, -1, -1))
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert 0 < int(over.headers["retry-after"]) <= 3600
    assert still_alice.status_code == 200  # quotas are per key
