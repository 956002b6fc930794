"""``jobtrack serve`` stops on SIGTERM within its ``--grace`` even while an event stream
(SSE, which never ends by itself) is open: the stream is cut, the app's shutdown runs.
``--no-webhooks`` reaches the server processes (``/metrics`` shows no webhook loops)."""

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx

from jobtrack.store import migrate
from support.cli import command
from support.keys import bearer, key_at
from support.polling import wait_until
from support.processes import answers, free_port, running


class Stream(threading.Thread):
    """An SSE client in a thread: notes when it is connected and when the stream ends."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.base, self.key = base, key
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=httpx.Timeout(5, read=60)) as c, \
                    c.stream("GET", "/events",
                             headers=bearer(self.key)) as r:
                assert r.status_code == 200, r.read()
                for chunk in r.iter_raw():
                    if b"connected" in chunk:
                        self.connected.set()
        except Exception as exc:  # the server cut the stream: that is the point
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended.set()


def test_sigterm_with_an_open_sse_stream_exits_within_the_grace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate.upgrade(url)
    key = asyncio.run(key_at(url, "acme"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    args = command("serve", "--port", str(port), "--no-migrate", "--grace", "1",
                   "--no-webhooks", url=url)
    token = "scrape-token-for-the-serve-test"
    with running(args, tmp_path, "serve", {"JOBTRACK_METRICS_TOKEN": token}) as server:
        wait_until(lambda: answers(f"{base}/healthz"), 30, "answer on /healthz", alive=server)
        metrics = httpx.get(f"{base}/metrics", headers=bearer(token))
        assert metrics.status_code == 200, metrics.text
        assert "jobtrack_event_subscribers" in metrics.text
        assert "jobtrack_webhook_attempts" not in metrics.text  # --no-webhooks
        stream = Stream(base, key)
        stream.start()
        assert stream.connected.wait(10), "the SSE stream did not start"
        time.sleep(0.2)
        took = server.stop(timeout=15)
        log = server.output()
    # (uvicorn re-raises the signal it handled once it is done: "terminated by SIGTERM")
    assert server.proc.returncode in (0, -signal.SIGTERM), log
    assert took < 6, f"serve took {took:.1f} s to stop with an SSE stream open:\n{log}"
    assert stream.ended.wait(5), "the SSE stream is still open after the server stopped"
    assert "Application shutdown complete" in log  # the lifespan ran: hub, pools closed
