"""Real subprocesses for tests: ``jobtrack serve`` and ``jobtrack worker`` on the test's
database, the API under ``uvicorn --factory``, each on a free port, waited for until it
answers, its output in a log file, and stopped cleanly (SIGTERM, then SIGKILL) however
the test ends. Subprocesses run from the repository root, where the examples import as
``examples.*``."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from jobtrack.settings import Settings
from support.cli import command
from support.polling import wait_until

REPO = Path(__file__).resolve().parents[2]

Popen = subprocess.Popen[bytes]


def free_port() -> int:
    """A TCP port of 127.0.0.1 nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(args: list[str], log: Path, env: Mapping[str, str] | None = None,
          cwd: Path = REPO, *, inherit: bool = True) -> Popen:
    """Start ``args``, its output appended to ``log``. ``env`` is added to this process's
    environment, or (``inherit=False``) is the whole environment."""
    environment = {**os.environ, **(env or {})} if inherit else dict(env or {})
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=cwd, env=environment, stdout=out,
                                stderr=subprocess.STDOUT)


def stop_process(proc: Popen, timeout: float = 30, sig: int = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Process:
    """A running subprocess whose output goes to a log file."""

    proc: Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> float:
        """SIGTERM it; seconds it took to exit (killed, and the test fails, past timeout)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running {timeout:g} s after SIGTERM:\n"
                                 + self.output()) from None
        return time.monotonic() - started


@contextmanager
def process(args: list[str], log: Path, env: Mapping[str, str] | None = None,
            cwd: Path = REPO) -> Iterator[Popen]:
    """Run ``args``, output to ``log`` (emptied first); stopped cleanly afterwards."""
    log.write_bytes(b"")
    proc = start(args, log, env, cwd)
    try:
        yield proc
    finally:
        stop_process(proc, timeout=20)


@contextmanager
def running(args: list[str], tmp_path: Path, name: str,
            env: Mapping[str, str] | None = None) -> Iterator[Process]:
    """Start ``args`` (a :func:`support.cli.command`), its log ``tmp_path/NAME.log``;
    make sure it is gone afterwards."""
    log = tmp_path / f"{name}.log"
    with process(args, log, env) as proc:
        yield Process(proc, log)


def answers(url: str) -> bool:
    """True when ``GET url`` answers 200."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_http(base: str, proc: Popen, log: Path, path: str = "/healthz",
              timeout: float = 60) -> None:
    """Until ``base + path`` answers 200; fail with the log when the process exits first
    or the time is up."""
    wait_until(lambda: answers(base + path), timeout, f"answer from {base}{path}",
               alive=Process(proc, log), pause=0.05)


def serve(url: str, port: int, log: Path, env: Mapping[str, str], *extra: str) -> Popen:
    """Start ``jobtrack serve`` on ``port`` (no migration, logs at warning; ``extra``
    options added) with ``env`` as its whole environment, its output appended to ``log``;
    not waited for."""
    return start(command("serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate",
                         "--log-level", "warning", *extra, url=url), log, env, inherit=False)


@contextmanager
def serving(url: str, tmp_path: Path, env: Mapping[str, str] | None = None,
            *options: str, path: str = "/healthz") -> Iterator[str]:
    """``jobtrack serve OPTIONS`` on a free port, once ``path`` answers 200; its base URL.
    Its log is ``tmp_path/serve.log``."""
    port = free_port()
    log = tmp_path / "serve.log"
    args = command("serve", "--host", "127.0.0.1", "--port", str(port), *options, url=url)
    with process(args, log, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(base, proc, log, path)
        yield base


def work(url: str, module: str, queues: str, log: Path, env: Mapping[str, str],
         cwd: Path = REPO, concurrency: int = 10) -> Popen:
    """Start ``jobtrack worker MODULE --queues QUEUES`` (no migration) in ``cwd``, with
    ``env`` as its whole environment."""
    return start(command("worker", module, "--queues", queues, "--concurrency",
                         str(concurrency), "--no-migrate", "--log-level", "WARNING", url=url),
                 log, env, cwd, inherit=False)


@contextmanager
def working(url: str, app_path: str, tmp_path: Path, *queues: str,
            env: Mapping[str, str] | None = None) -> Iterator[Popen]:
    """``jobtrack worker APP_PATH --queues ...`` (it runs as soon as it has started);
    its log is ``tmp_path/worker.log``."""
    args = command("worker", app_path, url=url)
    if queues:
        args += ["--queues", ",".join(queues)]
    with process(args, tmp_path / "worker.log", env) as proc:
        yield proc


@contextmanager
def api_process(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The API as a separate OS process (``uvicorn --factory``); its base URL."""
    port = free_port()
    env = {"JOBTRACK_DATABASE_URL": settings.database_url,
           "JOBTRACK_RATE_LIMIT_PER_MINUTE": "1000000",
           "JOBTRACK_EVENT_POLL_SECONDS": str(settings.event_poll_seconds)}
    args = [sys.executable, "-m", "uvicorn", "--factory", "jobtrack.api.app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--ws", "websockets-sansio"]
    log = tmp_path / f"api-{port}.log"
    with process(args, log, env) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_http(base, proc, log, timeout=20)
        yield base
