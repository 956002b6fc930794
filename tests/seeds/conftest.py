"""Fixtures of the seed-compatibility tests: a real ``jobtrack serve`` process on the
test's database, with keys for two tenants and an admin."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from seedkit import KEYS, Served, free_port

from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key


@pytest.fixture
async def keys(db: Database) -> dict[str, str]:
    out: dict[str, str] = {}
    async with db.write() as conn:
        for name, tenant, admin in KEYS:
            out[name], _ = await create_key(conn, tenant=tenant, admin=admin,
                                            now=datetime.now(UTC))
    return out


@pytest.fixture
def serve_env() -> dict[str, str]:
    """Extra environment of the served process (parametrize to change settings)."""
    return {}


@pytest.fixture
def served(db_url: str, keys: dict[str, str], tmp_path: Path,
           serve_env: dict[str, str]) -> Iterator[Served]:
    """``jobtrack serve`` as a subprocess on the test's (migrated) database."""
    port = free_port()
    env = {**os.environ, "JOBTRACK_RATE_LIMIT_PER_MINUTE": "1000000",
           "JOBTRACK_EVENT_POLL_SECONDS": "0.05", "JOBTRACK_KEY_CACHE_SECONDS": "0",
           **serve_env}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobtrack", "--database-url", db_url, "serve", "--port",
         str(port), "--no-migrate", "--no-webhooks", "--grace", "1", "--log-level",
         "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError("jobtrack serve did not start:\n"
                                   + (tmp_path / "serve.log").read_text())
            time.sleep(0.05)
        yield Served(url, keys)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
