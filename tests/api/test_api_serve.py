"""``jobtrack serve`` for real: a subprocess on a free port, a SQLite file it migrates,
a key from ``jobtrack keys create``, and HTTP requests over the loopback."""

import os
from pathlib import Path

import httpx

from jobtrack.domain.status import JobStatus
from support.cli import cli_key
from support.keys import bearer
from support.processes import serving


def test_serve_answers_http_with_a_key_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "JOBTRACK_KEY_CACHE_SECONDS": "5"}
    key = cli_key(url, "acme", env)
    assert key.startswith("jt_") and "\n" not in key
    with serving(url, tmp_path, env) as base, \
            httpx.Client(base_url=base, headers=bearer(key), timeout=10) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        created_job = client.post("/jobs", json={"queueName": "q", "name": "real"})
        assert created_job.status_code == 201
        job_id = created_job.json()["jobId"]
        got = client.get(f"/jobs/{job_id}")
        assert got.status_code == 200 and got.json()["status"] == JobStatus.PENDING
        assert got.headers["x-ratelimit-limit"] == "600"
        assert "server" not in got.headers
        refused = httpx.get(f"{base}/jobs/{job_id}", timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"]
