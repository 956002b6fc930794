"""``jobtrack workers ls`` and ``jobtrack tasks ls`` against a real ``jobtrack worker``
process: it appears while it runs, with its tasks, and leaves at SIGTERM."""

from pathlib import Path
from typing import Any

import orjson

from support.cli import command, invoke
from support.polling import wait_until
from support.processes import running

APP = '''
from typing import Any
import jobtrack

app = jobtrack.App()

@app.task(queue="ingest", phases=["loading", "indexing"], max_attempts=3, timeout=60)
async def ingest(ctx, document_id: str, pages: int = 1) -> None: ...

@app.task(queue="mail")
def notify(ctx, **data: Any) -> None: ...
'''


def _json(url: str, *args: str) -> Any:
    code, out, err = invoke(url, *args, "--json")
    assert code == 0, err
    return orjson.loads(out)


def test_workers_and_tasks_ls_show_a_running_worker(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "regapp.py").write_text(APP)
    assert _json(db_url, "workers", "ls") == []
    args = command("worker", "regapp:app", "--queues", "ingest,mail", "--concurrency", "3",
                   url=db_url)
    with running(args, tmp_path, "worker", env={"PYTHONPATH": str(tmp_path)}) as proc:
        wait_until(lambda: bool(_json(db_url, "workers", "ls")), 30, "worker recorded",
                   alive=proc)
        [worker] = _json(db_url, "workers", "ls")
        assert (worker["queues"], worker["concurrency"], worker["pid"], worker["stale"]) == (
            ["ingest", "mail"], 3, proc.proc.pid, False)
        code, table, _ = invoke(db_url, "workers", "ls")
        assert code == 0 and worker["workerId"] in table and "alive" in table
        proc.stop()
    assert _json(db_url, "workers", "ls") == []  # removed at a clean shutdown

    tasks = {t["name"]: t for t in _json(db_url, "tasks", "ls")}  # the declarations stay
    assert sorted(tasks) == ["ingest", "notify"]
    assert (tasks["ingest"]["queueName"], tasks["ingest"]["phases"],
            tasks["ingest"]["maxAttempts"], tasks["ingest"]["timeoutSeconds"],
            tasks["ingest"]["parameters"], tasks["ingest"]["requiredParameters"]) == (
        "ingest", ["loading", "indexing"], 3, 60, ["document_id", "pages"], ["document_id"])
    assert tasks["notify"]["acceptsAnyData"] is True
    code, table, _ = invoke(db_url, "tasks", "ls")
    assert code == 0
    assert "loading, indexing" in table and "document_id, pages?" in table and "**" in table
