"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against a real ``jobtrack serve`` on a free port and a SQLite file, with keys
from ``jobtrack keys create``: the jobs, queues and flows it lists, a job's phases, its
buttons, live updates without a reload, the replay after a reconnect, and a wrong key.

Skipped where Chromium or Playwright is missing, except in CI (``CI`` set), where that
fails: ``scripts/install`` installs both.
"""

import asyncio
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobtrack.domain.status import JobStatus, PhaseStatus
from support.cli import cli_key, command
from support.keys import bearer
from support.processes import free_port, start, stop_process, wait_http

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
IN_CI = bool(os.environ.get("CI"))
WAIT_MS = 15_000
#: the queues table: a column per job status, after the queue's name
JOB_COLUMNS = list(JobStatus)


def _browser_or_skip() -> None:
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing (apt-get install chromium; scripts/install does it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (scripts/install)"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{problem}: the browser tests may not be skipped in CI")
        pytest.skip(problem)


class Server:
    """``jobtrack serve`` as a subprocess that can be stopped and started again on its port."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log_path = url, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def key(self, tenant: str) -> str:
        return cli_key(self.url, tenant)

    def start(self, port: int | None = None) -> str:
        """Start serving on ``port`` (default: its own); answers the base URL."""
        port = port or self.port
        self.proc = start(command("serve", "--port", str(port), "--no-webhooks", "--grace", "1",
                                  url=self.url), self.log_path)
        base = f"http://127.0.0.1:{port}"
        wait_http(base, self.proc, self.log_path, timeout=30)
        return base

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _browser_or_skip()
    tmp = tmp_path_factory.mktemp("dashboard")
    served = Server(f"sqlite:///{tmp / 'dashboard.db'}", tmp / "serve.log")
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; the test fails if the page's script threw anything."""
    context = browser.new_context()
    errors: list[str] = []
    try:
        fresh = context.new_page()
        fresh.on("pageerror", lambda error: errors.append(str(error)))
        yield fresh
    finally:
        context.close()
    assert errors == [], "the dashboard's script threw"


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers=bearer(key), timeout=10)


def _ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.is_success, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _connect(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/")
    page.fill("#api-key", key)
    page.click("#connect")


def test_lists_a_job_s_phases_and_follows_changes_live(server: Server, page: Any) -> None:
    from playwright.sync_api import expect

    key = server.key("live")
    with _client(server.base, key) as api:
        ingest = _ok(api.post("/jobs", json={"queueName": "ingest", "name": "ingest-doc",
                                             "phases": ["loading", "indexing"]}))["jobId"]
        mail = _ok(api.post("/jobs", json={"queueName": "mail", "name": "send-mail"}))["jobId"]
        flow = _ok(api.post("/flows", json={
            "flowname": "report", "name": "assemble", "queueName": "reports",
            "children": [{"name": "fetch-a", "queueName": "ingest"},
                         {"name": "fetch-b", "queueName": "mail"}]}))
        flow_id, root = flow["flowId"], flow["flow"]["rootJobId"]
        _ok(api.patch(f"/jobs/{ingest}", json={"status": JobStatus.RUNNING}))
        _ok(api.patch(f"/jobs/{ingest}", json={"phase": {
            "name": "loading", "status": PhaseStatus.RUNNING,
            "progress": {"done": 3, "total": 10}}}))

        requests: list[Any] = []
        page.on("request", lambda request: requests.append(request))
        _connect(page, server.base, key)

        # the jobs list, with statuses; the queues; the flows
        jobs = page.locator("#jobs-body tr")
        expect(jobs).to_have_count(5)
        expect(page.locator(f'#jobs-body tr[data-job-id="{ingest}"] .badge')).to_have_text(
            JobStatus.RUNNING)
        expect(page.locator(f'#jobs-body tr[data-job-id="{mail}"] .badge')).to_have_text(
            JobStatus.PENDING)
        expect(page.locator('#queues-body tr[data-queue="ingest"]')).to_be_visible()
        expect(page.locator(f'#flows-body tr[data-flow-id="{flow_id}"]')).to_contain_text("report")
        expect(page.locator("#live")).to_have_text("live")

        # a job's detail: phases with progress, history
        page.locator(f'#jobs-body tr[data-job-id="{ingest}"] button').click()
        detail = page.locator("#job-detail-body")
        loading = detail.locator('tr[data-phase="loading"]')
        expect(loading.locator(".badge")).to_have_text(PhaseStatus.RUNNING)
        expect(loading.locator(".label")).to_have_text("30% (3/10)")
        expect(detail.locator('tr[data-phase="indexing"] .badge')).to_have_text(
            PhaseStatus.NOT_STARTED)
        expect(detail.locator(".history tbody tr")).to_have_count(2)  # created, started
        # the job's own bar, from its phases (by count: 0.3 of 2 phases)
        ingest_bar = page.locator(f'#jobs-body tr[data-job-id="{ingest}"] .label')
        expect(ingest_bar).to_have_text("15% (0.3/2)")

        page.evaluate("window.__sameDocument = true")
        # changes made over HTTP show up without a reload
        _ok(api.patch(f"/jobs/{ingest}", json={"phase": {
            "name": "loading", "progress": {"done": 7, "total": 10}}}))
        expect(loading.locator(".label")).to_have_text("70% (7/10)")
        expect(ingest_bar).to_have_text("35% (0.7/2)")
        _ok(api.patch(f"/jobs/{mail}", json={"status": JobStatus.RUNNING}))
        expect(page.locator(f'#jobs-body tr[data-job-id="{mail}"] .badge')).to_have_text(
            JobStatus.RUNNING)
        running = JOB_COLUMNS.index(JobStatus.RUNNING) + 2  # after the queue's name
        expect(page.locator(f'#queues-body tr[data-queue="mail"] td:nth-child({running})')
               ).to_have_text("1")

        # the buttons call the API, and the answer shows
        detail.locator('button[data-action="pause"]').first.click()
        expect(loading.locator(".badge")).to_have_text(PhaseStatus.PAUSED)
        detail.locator('button[data-action="resume"]').first.click()
        expect(loading.locator(".badge")).to_have_text(PhaseStatus.RUNNING)
        detail.locator('button[data-action="cancel"]').click()
        expect(detail.locator(".flag").first).to_have_text("cancel requested")
        assert _ok(api.get(f"/jobs/{ingest}"))["cancelRequested"] is True

        # the worker acknowledges the cancel; the page's retry starts a new attempt
        _ok(api.patch(f"/jobs/{ingest}", json={"status": JobStatus.CANCELLED}))
        expect(detail.locator(".badge").first).to_have_text(JobStatus.CANCELLED)
        detail.locator('button[data-action="retry"]').click()
        expect(detail.locator(".badge").first).to_have_text(JobStatus.PENDING)
        assert _ok(api.get(f"/jobs/{ingest}"))["attempt"] == 2

        # the flow's tree and progress, live
        page.locator(f'#flows-body tr[data-flow-id="{flow_id}"] button').click()
        tree = page.locator("#flow-detail-body .tree")
        expect(tree.locator("li")).to_have_count(3)
        expect(tree.locator(f'li[data-job-id="{root}"] > .node')).to_contain_text("assemble")
        child = _ok(api.get(f"/flows/{flow_id}", params={"include": "jobs"}))["jobs"]["children"][0]
        _ok(api.patch(f"/jobs/{child['jobId']}", json={"status": JobStatus.RUNNING}))
        _ok(api.patch(f"/jobs/{child['jobId']}", json={"status": JobStatus.COMPLETED}))
        expect(tree.locator(f'li[data-job-id="{child["jobId"]}"] > .node .badge')).to_have_text(
            JobStatus.COMPLETED)
        expect(page.locator("#flow-detail-body .flow-head .bar .label")).to_contain_text("33.3%")

        assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        page_url = f"{server.base}/"
        api_calls = [r for r in requests if r.url.startswith(server.base) and r.url != page_url]
        assert any("/events" in r.url for r in api_calls)
        for request in api_calls:
            assert request.all_headers().get("authorization") == f"Bearer {key}", request.url




def test_a_reconnect_replays_what_happened_meanwhile(server: Server, page: Any) -> None:
    from playwright.sync_api import expect

    key = server.key("replay")
    with _client(server.base, key) as api:
        job = _ok(api.post("/jobs", json={"queueName": "q", "name": "replayed"}))["jobId"]
        _connect(page, server.base, key)
        badge = page.locator(f'#jobs-body tr[data-job-id="{job}"] .badge')
        expect(badge).to_have_text(JobStatus.PENDING)
        expect(page.locator("#live")).to_have_text("live")
    server.stop()
    expect(page.locator("#live")).not_to_have_text("live")
    # the change happens while the page has no stream: through another API process
    other = Server(server.url, server.log_path)
    other_base = other.start()
    try:
        with _client(other_base, key) as api:
            _ok(api.patch(f"/jobs/{job}", json={"status": JobStatus.RUNNING}))
    finally:
        other.stop()
    server.start()
    # the page resumes from its Last-Event-ID: the missed change is replayed, not reloaded
    expect(badge).to_have_text(JobStatus.RUNNING)
    expect(page.locator("#live")).to_have_text("live")


def test_a_wrong_key_shows_the_error_message(server: Server, page: Any) -> None:
    from playwright.sync_api import expect

    refused = httpx.get(f"{server.base}/queues", headers={"Authorization": "Bearer jt_wrong"})
    assert refused.status_code == 401
    message = refused.json()["error"]["message"]
    _connect(page, server.base, "jt_wrong")
    expect(page.locator("#error-text")).to_contain_text(message)
    expect(page.locator("#app")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('jobtrack.apiKey')") is None
    # the page itself needed no key
    assert httpx.get(f"{server.base}/").status_code == 200


def test_lists_the_workers_and_tasks_the_registry_holds(server: Server, page: Any) -> None:
    from playwright.sync_api import expect

    from jobtrack.queue.app import App
    from jobtrack.queue.context import JobContext
    from jobtrack.queue.worker import Worker

    app = App(server.url)

    @app.task(queue="ingest", phases=["loading", "indexing"], max_attempts=3)
    async def ingest_doc(ctx: JobContext, document_id: str, pages: int = 1) -> None: ...

    worker = Worker(app, queues=["ingest", "mail"], concurrency=4)

    async def record() -> None:  # what `jobtrack worker` does when it starts
        try:
            await worker.presence.enter()
        finally:
            await app.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        thread.submit(asyncio.run, record()).result()
    tasks = page.locator("#tasks-body")
    _connect(page, server.base, server.key("registry"))
    row = tasks.locator('tr[data-task="ingest_doc"]')
    expect(row).to_contain_text("loading → indexing")
    expect(row).to_contain_text("document_id, pages?")
    expect(page.locator("#workers-denied")).to_be_visible()  # a tenant key sees no workers
    expect(page.locator("#workers-body tr")).to_have_count(0)

    admin = cli_key(server.url, "ops", admin=True)
    _connect(page, server.base, admin)
    mine = page.locator(f'#workers-body tr[data-worker-id="{worker.id}"]')
    expect(mine).to_contain_text("ingest, mail")
    expect(mine.locator("td").nth(3)).to_have_text("4")
    expect(page.locator("#workers-denied")).to_be_hidden()
    expect(tasks.locator('tr[data-task="ingest_doc"] td').nth(3)).to_have_text("3")
