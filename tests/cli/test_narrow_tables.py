"""Tables and trees in an 80-column terminal (COLUMNS=80): every job's full id, name and
status stay readable (no column shrunk to ``s…``), and a flow's tree tells identical jobs
apart by a short id and their data (issue 10)."""

import asyncio
from pathlib import Path

from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from jobtrack.queue.flows import FlowJob
from support.cli import invoke


def _run(url: str, *args: str) -> str:
    code, out, err = invoke(url, *args, columns=80)
    assert code == 0, out + err
    return out


def _fill(url: str) -> tuple[list[str], str]:
    async def go() -> tuple[list[str], str]:
        async with App(url) as app:
            ids = [(await app.enqueue("ingest_document", _queue="ingest-large",
                                      document_id=f"doc-{i}")).id for i in range(3)]
            flow = await app.enqueue_flow("collection", FlowJob(
                "publish_collection", _queue="publish", children=[
                    FlowJob("ingest_document", _queue="ingest", document_id=f"doc-{i}")
                    for i in range(3)]))
            return ids, flow.id

    return asyncio.run(go())


def test_jobs_ls_fits_80_columns_with_readable_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    ids, _ = _fill(url)
    text = _run(url, "jobs", "ls")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    for job_id in ids:
        at = next(i for i, line in enumerate(lines) if job_id in line)
        assert "ingest_document" in lines[at] and JobStatus.PENDING.value in lines[at], text
        assert "ingest-large" in lines[at + 1], "the queue, under the name"
    assert "…" not in text


def test_flows_show_tells_identical_jobs_apart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    _, flow_id = _fill(url)
    text = _run(url, "flows", "show", flow_id)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    children = [line for line in text.splitlines() if "ingest_document" in line]
    assert len(children) == 3
    assert len(set(children)) == 3, "each line says which job it is"
    for i in range(3):
        assert sum(f"document_id=doc-{i}" in line for line in children) == 1, text


def test_flows_ls_fits_80_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    _, flow_id = _fill(url)
    text = _run(url, "flows", "ls")
    assert max(len(line) for line in text.splitlines()) <= 80, text
    row = next(line for line in text.splitlines() if flow_id in line)
    assert "collection" in row and JobStatus.PENDING.value in row


def test_keys_ls_fits_80_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'narrow.db'}"
    _run(url, "keys", "create", "--tenant", "acme", "--label", "ci")
    text = _run(url, "keys", "ls")
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text and "acme" in text
