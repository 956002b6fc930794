"""``examples/status_sync``: the legacy producer reports ``QUEUED/STARTED/ERROR/COMPLETED``
to a real ``jobtrack serve``; the TypeScript consumer, compiled with ``tsc --strict``
against ``contract/``, follows the jobs under node. Asserts seed 000's definition of done
(docs/examples/status_sync.md names each check).

Needs node and tsc (``scripts/install`` puts tsc in ``.tools``): skipped without them
locally, failed in CI, as tests/unit/test_contract_exports.py does."""

import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from rich.console import Console

from examples.status_sync.producer import LegacyProducer, produce
from jobtrack import JobStatus
from support.cli import cli_key
from support.keys import bearer
from support.processes import REPO, free_port, process, serving

EXAMPLE = REPO / "examples" / "status_sync"
TSC = REPO / ".tools" / "node_modules" / ".bin" / "tsc"
CANONICAL = {s.value for s in JobStatus}
LEGACY = {"QUEUED": JobStatus.PENDING, "STARTED": JobStatus.RUNNING,
          "ERROR": JobStatus.FAILED, "COMPLETED": JobStatus.COMPLETED}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the TypeScript consumer")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def consumer_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """consumer.ts compiled with ``tsc --strict`` (its tsconfig.json) into a temp dir."""
    if shutil.which("node") is None:
        _unavailable("node is not installed")
    if not TSC.exists():
        _unavailable("tsc not found; run scripts/install")
    out = tmp_path_factory.mktemp("consumer")
    done = subprocess.run([str(TSC), "-p", str(EXAMPLE / "tsconfig.json"), "--strict",
                           "--outDir", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "examples" / "status_sync" / "consumer.js"


def _finish(proc: "subprocess.Popen[bytes]", log: Path) -> tuple[int, list[str]]:
    code = proc.wait(timeout=90)
    return code, log.read_text().splitlines()


def test_legacy_producer_and_typescript_consumer_over_a_real_server(
        db_url: str, tmp_path: Path, consumer_js: Path) -> None:
    key = cli_key(db_url, "kubegram")
    out = io.StringIO()
    with serving(db_url, tmp_path) as base:
        log = tmp_path / "consumer.log"
        with process(["node", str(consumer_js), base, key, "2", "60"], log) as consumer:
            producer = LegacyProducer(base, key)
            try:
                ids, answers = produce(producer, Console(file=out), pause=0.3)
            finally:
                producer.close()
            code, lines = _finish(consumer, log)
        with httpx.Client(base_url=base, headers=bearer(key)) as http:
            reads = [http.get(f"/jobs/{job_id}") for job_id in ids]
            histories = [http.get(f"/jobs/{job_id}/history").json() for job_id in ids]

    # the API answers canonical values, and a Deprecation header for each legacy one
    assert [a.sent for a in answers] == ["QUEUED", "STARTED", "COMPLETED", "STARTED", "ERROR"]
    for answer in answers:
        assert answer.status == LEGACY[answer.sent] == answer.job["status"]
        assert answer.deprecation == (f'true; alias="{answer.sent.lower()}"; '
                                      f'canonical="{LEGACY[answer.sent].value}"')
    ok, broken = ids
    for read in reads:  # a plain read: canonical, nothing deprecated
        assert read.status_code == 200 and "deprecation" not in read.headers
        assert read.json()["status"] in CANONICAL
    assert [r.json()["status"] for r in reads] == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert reads[1].json()["error"]["message"] == "cluster unreachable"
    assert {h["to"] for history in histories for h in history} <= CANONICAL

    # the consumer (compiled against the contract) saw only canonical values
    assert code == 0, "\n".join(lines)
    assert not any("unknown status" in line for line in lines)
    summary = json.loads(lines[-1])
    assert summary == {"finished": {ok: JobStatus.COMPLETED, broken: JobStatus.FAILED},
                       "unknown": []}
    shown = [line for line in lines if line.startswith((ok, broken))]
    assert f"{ok} Done (completed, step running)" in shown
    assert any(line.startswith(f"{broken} Failed (failed") and "cluster unreachable" in line
               for line in shown)


@contextmanager
def saved_answer(body: dict[str, Any]) -> Iterator[str]:
    """A real HTTP server answering every GET with ``body`` (a saved API answer)."""
    data = json.dumps(body).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_consumer_flags_a_status_outside_the_contract(tmp_path: Path,
                                                      consumer_js: Path) -> None:
    """The answer the legacy API gave before the migration: ``STARTED`` is not canonical,
    so the consumer logs it as unknown and fails instead of guessing."""
    legacy = {"items": [{"jobId": "legacy-1", "status": "STARTED", "step": "queued",
                         "error": None}], "nextCursor": None}
    with saved_answer(legacy) as base:
        log = tmp_path / "consumer.log"
        with process(["node", str(consumer_js), base, "any-key", "1", "1"], log) as consumer:
            code, lines = _finish(consumer, log)
    assert code == 1
    assert 'unknown status "STARTED" for job legacy-1' in lines
    summary = json.loads(lines[-1])
    assert summary["finished"] == {} and set(summary["unknown"]) == {"STARTED"}
