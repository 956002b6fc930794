"""Helpers of the CLI tests: the ``jobtrack`` command as a real subprocess or through
Typer's runner, free ports, and a real HTTP webhook receiver (``http.server`` in a
thread, so it works from sync and async tests alike)."""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import orjson
from typer.testing import CliRunner

from jobtrack.cli import app as cli_app
from jobtrack.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def command(*args: str, url: str) -> list[str]:
    """``jobtrack --database-url URL ARGS...`` as a subprocess command line."""
    return [sys.executable, "-m", "jobtrack", "--database-url", url, *args]


def invoke(url: str, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli_app, ["--database-url", url, *args],
                                env={"COLUMNS": "250"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@dataclass
class Process:
    """A running ``jobtrack`` subprocess whose output goes to a log file."""

    proc: "subprocess.Popen[bytes]"
    log_path: Path
    log: IO[str]

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

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
def running(args: list[str], tmp_path: Path, name: str,
            env: dict[str, str] | None = None) -> Iterator[Process]:
    """Start ``args`` (a :func:`command`); make sure it is gone afterwards."""
    log_path = tmp_path / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=log,
                            stderr=subprocess.STDOUT)
    process = Process(proc, log_path, log)
    try:
        yield process
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               alive: Process | None = None) -> None:
    """Poll ``check`` until it holds; fail with ``what`` (and the process's log)."""
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None and alive.proc.poll() is not None:
            raise AssertionError(f"exited with {alive.proc.returncode} before {what}:\n"
                                 + alive.output())
        if time.monotonic() > deadline:
            log = alive.output() if alive is not None else ""
            raise AssertionError(f"no {what} within {timeout:g} s\n{log}")
        time.sleep(0.05)


@dataclass
class Receipt:
    delivery_id: int
    event_type: str
    signature: str
    body: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value


@dataclass
class Receiver:
    """A webhook endpoint on a free loopback port that records every POST (answers 200)."""

    port: int = field(default_factory=free_port)
    got: list[Receipt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def receipts(self) -> list[Receipt]:
        with self.lock:
            return list(self.got)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.got.append(Receipt(int(self.headers[DELIVERY_HEADER]),
                                            self.headers[EVENT_HEADER],
                                            self.headers[SIGNATURE_HEADER], body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
