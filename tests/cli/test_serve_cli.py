"""``jobtrack serve`` stops on SIGTERM within its ``--grace`` even while an event stream
(SSE, which never ends by itself) is open: the stream is cut, the app's shutdown runs.
``--no-webhooks`` reaches the server processes (``/metrics`` shows no webhook loops)."""

import asyncio
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from clikit import command, free_port, running, wait_until

from jobtrack.store import migrate
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key


async def _key(url: str) -> str:
    db = Database(url, pool_size=1)
    try:
        async with db.write() as conn:
            raw, _ = await create_key(conn, tenant="acme", admin=False, now=datetime.now(UTC))
    finally:
        await db.dispose()
    return raw


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
                             headers={"Authorization": f"Bearer {self.key}"}) as r:
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
    key = asyncio.run(_key(url))
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    args = command("serve", "--port", str(port), "--no-migrate", "--grace", "1",
                   "--no-webhooks", url=url)
    token = "scrape-token-for-the-serve-test"
    with running(args, tmp_path, "serve", {"JOBTRACK_METRICS_TOKEN": token}) as server:
        wait_until(up, 30, "answer on /healthz", alive=server)
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
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
