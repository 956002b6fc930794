"""Fixtures for the HTTP API tests (helpers live in the ``support`` package)."""

from collections.abc import AsyncIterator

import pytest

from jobtrack.settings import Settings
from support.api import Api, running


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The test's settings with a rate limit no functional test reaches."""
    return settings.model_copy(update={"rate_limit_per_minute": 1_000_000})


@pytest.fixture
async def api(api_settings: Settings, keys: dict[str, str]) -> AsyncIterator[Api]:
    async with running(api_settings, keys) as started:
        yield started
