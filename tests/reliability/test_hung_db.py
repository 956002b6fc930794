"""A database that hangs instead of refusing (its processes frozen with SIGSTOP): the API
answers 503 with ``Retry-After`` within its timeouts, ``/readyz`` within its own shorter
bound, and answers again by itself once the database thaws.

Runs on a throwaway PostgreSQL cluster of its own (never the suite's server): see
``support.cluster`` for the cluster.
"""

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from jobtrack.store import migrate
from support.api import assert_503
from support.cli import cli_key
from support.cluster import Cluster, throwaway_cluster
from support.keys import bearer
from support.processes import free_port, serve, stop_process, wait_http

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: the timeouts of the API under test (short, so that the test is)
TIMEOUTS = {"JOBTRACK_DB_CONNECT_TIMEOUT_SECONDS": "2",
            "JOBTRACK_DB_STATEMENT_TIMEOUT_SECONDS": "2",
            "JOBTRACK_DB_POOL_TIMEOUT_SECONDS": "1",
            "JOBTRACK_READYZ_TIMEOUT_SECONDS": "1"}
#: how long the database stays frozen: longer than any answer may take
FROZEN = 15.0


def _cluster_pids(pg: Cluster) -> list[int]:
    """The postmaster and its children (the backends the API is connected to)."""
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh cluster, stopped and deleted afterwards (never the machine's server)."""
    with throwaway_cluster("jobtrack-hung-") as pg:
        yield pg


@contextmanager
def frozen(pg: Cluster) -> Iterator[None]:
    pids = _cluster_pids(pg)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGCONT)


def test_a_frozen_database_gets_503_in_bounded_time_then_recovers(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = cluster.url
    migrate.upgrade(url)
    env = {**os.environ, **TIMEOUTS, "JOBTRACK_DATABASE_URL": url,
           "JOBTRACK_KEY_CACHE_SECONDS": "600"}
    auth = bearer(cli_key(url, "t", env))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "api.log"
    api = serve(url, port, log, env)
    try:
        wait_http(base, api, log)
        with httpx.Client(base_url=base, headers=auth, timeout=10) as c:
            job = c.post("/jobs", json={"queueName": "q", "name": "n"})
            assert job.status_code == 201, job.text
            job_id = job.json()["jobId"]
            assert c.get("/readyz").status_code == 200

            def ask(method: str, path: str) -> tuple[httpx.Response | None, float]:
                began = time.monotonic()
                try:
                    with httpx.Client(base_url=base, headers=auth,
                                      timeout=FROZEN - 3) as one:
                        body = {"queueName": "q", "name": "n"} if method == "POST" else None
                        r = one.request(method, path, json=body)
                except httpx.TimeoutException:
                    r = None
                return r, time.monotonic() - began

            asks = [("GET", "/readyz"), ("GET", f"/jobs/{job_id}"), ("GET", "/jobs"),
                    ("POST", "/jobs"), ("GET", "/readyz"), ("GET", f"/jobs/{job_id}")]
            with frozen(cluster):
                began = time.monotonic()
                with ThreadPoolExecutor(len(asks)) as pool:
                    answers = list(pool.map(lambda a: ask(*a), asks))
                # every answer came while the database was still frozen
                assert time.monotonic() - began < FROZEN
                for (method, path), (r, took) in zip(asks, answers, strict=True):
                    assert r is not None, f"{method} {path}: no answer within {took:.1f} s"
                    assert_503(r)
                print("answers while frozen (s):",
                      {f"{m} {p}": round(t, 2) for (m, p), (_, t) in zip(asks, answers,
                                                                         strict=True)})
                time.sleep(max(0.0, FROZEN - (time.monotonic() - began)))
            # thawed: the same process answers again, by itself
            deadline = time.monotonic() + 30
            while True:
                ready = c.get("/readyz").status_code
                got = c.get(f"/jobs/{job_id}").status_code
                if ready == 200 and got == 200:
                    break
                assert time.monotonic() < deadline, (ready, got, log.read_text())
                time.sleep(0.2)
            assert c.post("/jobs", json={"queueName": "q", "name": "n"}).status_code == 201
    finally:
        stop_process(api)
