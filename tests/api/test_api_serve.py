"""``jobtrack serve`` for real: a subprocess on a free port, a SQLite file it migrates,
a key from ``jobtrack keys create``, and HTTP requests over the loopback."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from jobtrack.domain.status import JobStatus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli(*args: str, url: str) -> list[str]:
    return [sys.executable, "-m", "jobtrack", "--database-url", url, *args]


def test_serve_answers_http_with_a_key_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "JOBTRACK_KEY_CACHE_SECONDS": "5"}
    created = subprocess.run(cli("keys", "create", "--tenant", "acme", url=url), env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    key = created.stdout.strip()
    assert key.startswith("jt_") and "\n" not in key
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(cli("serve", "--host", "127.0.0.1", "--port", str(port),
                                  url=url), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
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
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
