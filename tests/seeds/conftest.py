"""Fixtures of the seed-compatibility tests: a real ``jobtrack serve`` process on the
test's database, with keys for two tenants and an admin (the ``keys`` fixture)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.api import Served
from support.processes import serving


@pytest.fixture
def serve_env() -> dict[str, str]:
    """Extra environment of the served process (parametrize to change settings)."""
    return {}


@pytest.fixture
def served(db_url: str, keys: dict[str, str], tmp_path: Path,
           serve_env: dict[str, str]) -> Iterator[Served]:
    """``jobtrack serve`` as a subprocess on the test's (migrated) database."""
    env = {"JOBTRACK_RATE_LIMIT_PER_MINUTE": "1000000", "JOBTRACK_EVENT_POLL_SECONDS": "0.05",
           "JOBTRACK_KEY_CACHE_SECONDS": "0", **serve_env}
    with serving(db_url, tmp_path, env, "--no-migrate", "--no-webhooks", "--grace", "1",
                 "--log-level", "warning", path="/readyz") as url:
        yield Served(url, keys)
