"""What a new user sees of the ``jobtrack`` command: help without a type on every flag,
one ``--log-level`` choice for ``worker`` and ``serve``, and a worker whose log says what
happened once, in words (issue 10)."""

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from support.cli import command
from support.polling import wait_until
from support.processes import running

TASKS = textwrap.dedent("""
    import jobtrack

    app = jobtrack.App()

    @app.task
    async def hello(ctx, name: str):
        return f"hello {name}"
""")


def _help(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "jobtrack", *args, "--help"],
                          capture_output=True, text=True, timeout=60, check=True,
                          env={"COLUMNS": "80", "PATH": ""})
    return proc.stdout


@pytest.mark.parametrize("args", [(), ("worker",), ("serve",), ("jobs", "ls"),
                                  ("jobs", "enqueue"), ("keys", "create")])
def test_help_names_no_type_for_flags(args: tuple[str, ...]) -> None:
    text = _help(*args)
    assert "<bool>" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_worker_and_serve_take_the_same_log_levels() -> None:
    def levels(text: str) -> str:
        found = re.search(r"--log-level <([^>]+)>", text)
        assert found is not None, text
        return found.group(1)

    worker, serve = levels(_help("worker")), levels(_help("serve"))
    assert worker == serve == "debug|info|warning|error"


def test_worker_logs_its_stop_once_in_words_and_no_alembic_chatter(tmp_path: Path) -> None:
    (tmp_path / "hellotasks.py").write_text(TASKS)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with running(command("worker", "hellotasks:app", "--log-level", "INFO", url=url),
                 tmp_path, "worker", env={"PYTHONPATH": str(tmp_path)}) as proc:
        wait_until(lambda: "tasks hello" in proc.output(), 60, "the worker's start line",
                   alive=proc)
        time.sleep(0.2)
        proc.stop()
        output = proc.output()
    assert proc.proc.returncode == 0, output
    assert "alembic.runtime.plugins" not in output
    assert "WorkerStats(" not in output
    stops = [line for line in output.splitlines() if "stopped" in line]
    assert len(stops) == 1, output
    assert "0 claimed" in stops[0]
