"""Helpers of the example tests: real ``jobtrack serve`` / ``jobtrack worker``
subprocesses on the test's database, run from the repository root (where the examples
import as ``examples.*``), and a key from ``jobtrack keys create``."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def jobtrack(*args: str, url: str) -> list[str]:
    """``jobtrack --database-url URL ARGS...`` as a command line."""
    return [sys.executable, "-m", "jobtrack", "--database-url", url, *args]


def create_key(url: str, tenant: str) -> str:
    done = subprocess.run(jobtrack("keys", "create", "--tenant", tenant, url=url), cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@contextmanager
def process(args: list[str], log: Path, env: Mapping[str, str] | None = None
            ) -> Iterator["subprocess.Popen[bytes]"]:
    """Run ``args`` from the repository root, output to ``log``; SIGTERM it afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_http(base: str, proc: "subprocess.Popen[bytes]", log: Path,
              path: str = "/healthz", timeout: float = 60) -> None:
    """Until ``base + path`` answers 200; fail with the log when the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{base} did not come up:\n{log.read_text()}"
        time.sleep(0.1)


@contextmanager
def serving(url: str, tmp_path: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``jobtrack serve`` on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path / "serve.log"
    with process(jobtrack("serve", "--host", "127.0.0.1", "--port", str(port), url=url),
                 log, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(base, proc, log)
        yield base


@contextmanager
def working(url: str, app_path: str, tmp_path: Path, *queues: str,
            env: Mapping[str, str] | None = None) -> Iterator["subprocess.Popen[bytes]"]:
    """``jobtrack worker APP_PATH --queues ...`` (it runs as soon as it has started)."""
    args = jobtrack("worker", app_path, url=url)
    if queues:
        args += ["--queues", ",".join(queues)]
    with process(args, tmp_path / "worker.log", env) as proc:
        yield proc
