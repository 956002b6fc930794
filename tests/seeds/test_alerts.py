"""Seed 004's alerts ship: ``deploy/prometheus/alerts.yml`` passes ``promtool check rules``
and its unit tests (``promtool test rules``), and ``GET /metrics`` of a real app has every
series the rules read, in a form ``promtool check metrics`` accepts, with the failure and
table-size figures the rules need. promtool comes from Debian's ``prometheus`` package
(``scripts/install`` installs it as root); without it these tests skip, except in CI."""

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jobtrack.api.app import create_app
from jobtrack.api.state import state_of
from jobtrack.domain.status import JobStatus
from jobtrack.settings import Settings
from jobtrack.store.tables import metadata
from support.keys import bearer, new_key
from support.servers import asgi_client

DEPLOY = Path(__file__).parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "alerts.yml"
RULE_TESTS = DEPLOY / "alerts.test.yml"
RUNNING, COMPLETED, FAILED = (s.value for s in (JobStatus.RUNNING, JobStatus.COMPLETED,
                                                JobStatus.FAILED))
FINAL = sorted(s.value for s in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED))
ALERTS = ("JobtrackJobsStuck", "JobtrackFailureRateHigh", "JobtrackJobTableLarge")


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (Debian package prometheus; "
                        "scripts/install installs it as root)")
        pytest.skip("promtool missing (apt-get install prometheus, or scripts/install as root)")
    return found


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_rules_pass_promtool_and_their_unit_tests(promtool: str) -> None:
    checked = _run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    text = RULES.read_text()
    for alert in ALERTS:  # each alert is exercised by the unit tests
        assert f"alert: {alert}" in text
        assert f"alertname: {alert}" in RULE_TESTS.read_text()
    # seed 004's thresholds
    assert "> 0.10" in text and "> 100e6" in text and "jobtrack_jobs_stuck" in text


def _metric_names_in_rules() -> set[str]:
    exprs = re.findall(r"expr: ((?:.*\n)(?:\s{10,}.*\n)*)", RULES.read_text())
    return {name for expr in exprs for name in re.findall(r"\bjobtrack_[a-z_]+", expr)}


@pytest.fixture
async def scraped(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 1_000_000}))
    async with asgi_client(app) as c:
        yield c, bearer(await new_key(state_of(app).db, "ops", admin=True))


async def _finish(client: httpx.AsyncClient, auth: dict[str, str], queue: str,
                  status: str) -> None:
    r = await client.post("/jobs", json={"queueName": queue, "name": "n"}, headers=auth)
    url = f"/jobs/{r.json()['job']['jobId']}"
    for step in (RUNNING, status):
        assert (await client.patch(url, json={"status": step}, headers=auth)).status_code == 200


async def _scrape_until(client: httpx.AsyncClient, auth: dict[str, str], line: str) -> str:
    async with asyncio.timeout(10):
        while True:
            r = await client.get("/metrics", headers=auth)
            assert r.status_code == 200, r.text
            if line in r.text:
                return r.text
            await asyncio.sleep(0.05)


async def test_metrics_have_what_the_rules_read_and_pass_promtool(
    scraped: tuple[httpx.AsyncClient, dict[str, str]], promtool: str
) -> None:
    client, auth = scraped
    await _finish(client, auth, "ingest", COMPLETED)
    await _finish(client, auth, "ingest", FAILED)
    await _finish(client, auth, "ingest", FAILED)
    body = await _scrape_until(
        client, auth, 'jobtrack_jobs_finished_total{queue="ingest",status="failed"} 2.0')
    assert 'jobtrack_jobs_finished_total{queue="ingest",status="completed"} 1.0' in body
    # a final status not reached yet is a zero, so its first increase is seen
    assert 'jobtrack_jobs_finished_total{queue="ingest",status="cancelled"} 0.0' in body
    sizes = dict(re.findall(r'^jobtrack_table_bytes\{table="([a-z_]+)"\} (\S+)$', body, re.M))
    assert set(sizes) == set(metadata.tables)
    assert float(sizes["jobs"]) > 0
    assert 'jobtrack_jobs_stuck{queue="ingest"} 0.0' in body
    served = set(re.findall(r"^(jobtrack_[a-z_]+)", body, re.M))
    assert _metric_names_in_rules() <= served, _metric_names_in_rules() - served
    checked = _run(promtool, "check", "metrics", stdin=body)
    assert checked.returncode == 0, checked.stdout + checked.stderr
