"""``jobtrack jobs enqueue NAME --queue Q --data JSON [--delay S] [--priority P]
[--wait]``: the job id alone on stdout; with ``--wait`` the end state, exit 0 only if the
job completed. Runs against a real worker process on a new SQLite database."""

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from jobtrack.domain.records import Job
from jobtrack.domain.status import JobStatus
from jobtrack.queue.app import App
from support.cli import command, invoke
from support.processes import running

TASKS = textwrap.dedent("""
    import jobtrack

    app = jobtrack.App()

    @app.task(queue="mail")
    async def send(ctx, to: str):
        if to == "nobody":
            raise RuntimeError("no such address")
        return {"sent": to}
""")


def _stored(url: str, job_id: str) -> Job | None:
    async def go() -> Job | None:
        async with App(url, tenant="default") as app:
            return await app.get_job(job_id)

    return asyncio.run(go())


def test_enqueue_prints_the_id_alone_and_stores_the_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    before = datetime.now(UTC)
    code, stdout, stderr = invoke(url, "jobs", "enqueue", "send", "--queue", "mail",
                                  "--data", '{"to": "ada"}', "--delay", "60",
                                  "--priority", "5")
    assert code == 0, stderr
    job_id = stdout.strip()
    assert stdout == job_id + "\n"
    job = _stored(url, job_id)
    assert job is not None
    assert (job.name, job.queue_name, job.data, job.priority) == ("send", "mail",
                                                                   {"to": "ada"}, 5)
    assert job.status is JobStatus.PENDING
    assert job.run_at is not None and (job.run_at - before).total_seconds() >= 59


def test_enqueue_declares_the_phases_of_a_task_registered_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code, stdout, stderr = invoke(url, "jobs", "enqueue", "ingest", "--phases",
                                  "loading, indexing")
    assert code == 0, stderr
    job = _stored(url, stdout.strip())
    assert job is not None and [p.name for p in job.phases] == ["loading", "indexing"]


def test_enqueue_refuses_data_that_is_not_a_json_object(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    for bad in ("{not json", "[1, 2]"):
        code, stdout, stderr = invoke(url, "jobs", "enqueue", "send", "--data", bad)
        assert code == 2 and stdout == ""
        assert "--data" in stderr


def test_enqueue_wait_exits_with_the_jobs_end_state(tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text(TASKS)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    with running(command("worker", "mytasks:app", url=url), tmp_path, "worker",
                 env={"PYTHONPATH": str(tmp_path)}):
        ok = subprocess.run(
            command("jobs", "enqueue", "send", "--queue", "mail", "--data", '{"to": "ada"}',
                    "--wait", url=url),
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
        bad = subprocess.run(
            command("jobs", "enqueue", "send", "--queue", "mail",
                    "--data", '{"to": "nobody"}', "--wait", url=url),
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.split()) == 1
    assert JobStatus.COMPLETED.value in ok.stderr
    assert bad.returncode == 1, bad.stderr
    assert JobStatus.FAILED.value in bad.stderr and "no such address" in bad.stderr
    job = _stored(url, bad.stdout.strip())
    assert job is not None and job.status is JobStatus.FAILED


def test_enqueue_is_listed_in_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "jobtrack", "jobs", "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "100", "PATH": ""})
    assert "enqueue" in proc.stdout
