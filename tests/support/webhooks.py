"""A real HTTP webhook receiver: ``http.server`` on a free loopback port, in a thread (so
it answers while sync or async test code runs), recording every POST and answering as
told. It can go away (port closed) and come back on the same port."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from jobtrack.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from support.processes import free_port

#: ``answer(n, body)``: the status for the n-th request (from 0)
Answer = Callable[[int, bytes], int]


@dataclass
class Received:
    """One POST the receiver got, and the status it answered."""

    delivery_id: int
    event_type: str
    signature: str
    body: bytes
    answered: int = 200

    @property
    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value




class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


@dataclass
class Receiver:
    """A webhook endpoint at ``url`` (``/hook`` on its port) that records every POST."""

    answer: Answer = lambda _n, _body: 200
    port: int = field(default_factory=free_port)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def receipts(self) -> list[Received]:
        with self.lock:
            return list(self.got)

    def delivered(self) -> list[Received]:
        """What it got and answered with a success."""
        return [r for r in self.receipts() if r.answered < 300]

    def valid(self, secret: str) -> bool:
        """Every request it got is signed with ``secret``."""
        return all(verify(secret, r.body, r.signature) for r in self.receipts())

    def start(self) -> None:
        """Listen (again) on its port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = receiver.answer(len(receiver.got), body)
                    receiver.got.append(Received(
                        int(self.headers[DELIVERY_HEADER]), self.headers[EVENT_HEADER],
                        self.headers[SIGNATURE_HEADER], body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the port: connections are refused until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def receiving(answer: Answer | None = None) -> Iterator[Receiver]:
    """A started :class:`Receiver` (answering 200 unless ``answer`` says otherwise)."""
    receiver = Receiver() if answer is None else Receiver(answer=answer)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
