"""``jobtrack serve`` bounds what it reads of a request's head: too many headers, or too
many bytes of them, get 431 before the rest is read (and before any route runs)."""

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobtrack.store import migrate
from support.cli import command
from support.polling import wait_until
from support.processes import answers, free_port, running


def _ask(port: int, head: bytes) -> bytes:
    """Send ``head`` (as much as the server takes); the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            for start in range(0, len(head), 16_384):
                sock.sendall(head[start:start + 16_384])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
    return answer.split(b"\r\n", 1)[0]


def _head(count: int, size: int) -> bytes:
    lines = [b"GET /jobs HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [b"X-Filler-%d: %s" % (i, b"v" * size) for i in range(count)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate.upgrade(url)
    port = free_port()

    args = command("serve", "--port", str(port), "--no-migrate", "--no-webhooks", url=url)
    with running(args, tmp_path, "serve") as server:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30,
                   "answer on /healthz", alive=server)
        yield port


def test_huge_and_numerous_headers_get_431_unread(port: int) -> None:
    big = _head(200, 8_192)  # 1.6 MB of headers
    status = _ask(port, big)
    assert status.startswith(b"HTTP/1.1 431"), status
    many = _head(150, 10)  # small, but too many
    assert _ask(port, many).startswith(b"HTTP/1.1 431")
    one_huge = _head(1, 2_000_000)  # one header, never ending
    assert _ask(port, one_huge).startswith(b"HTTP/1.1 431")
    # what a client really sends passes: the route answers (401: no key)
    fine = _head(40, 1_000)
    assert _ask(port, fine).startswith(b"HTTP/1.1 401")
    r = httpx.get(f"http://127.0.0.1:{port}/readyz", headers={"X-A": "b" * 8_000})
    assert r.status_code == 200
