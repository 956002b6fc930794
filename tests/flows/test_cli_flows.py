"""``jobtrack flows show`` and ``jobtrack flows ls`` against a real database."""

import asyncio
import threading
import time
from functools import partial

from jobtrack.domain.flows import Flow
from jobtrack.domain.status import JobStatus
from jobtrack.store.engine import Database
from support.cli import invoke
from support.flows import job_list, make_flow, node
from support.store import claim, finish

run = partial(invoke, columns=200)


async def _setup(db_url: str) -> Flow:
    db = Database(db_url)
    try:
        flow, _ = await make_flow(db, node(
            "assemble", "assemble",
            node("extract", "extract"),
            node("embed", "embed", phases=("chunk", "embed")),
            node("notify", "extract")), flowname="ingest-pdf")
        (first, _running) = await claim(db, "extract", limit=2)
        await finish(db, first.id, JobStatus.COMPLETED)
        await make_flow(db, node("other", "q"), flowname="other", tenant="t2")
    finally:
        await db.dispose()
    return flow


async def _complete_everything(db_url: str, flow_id: str) -> None:
    db = Database(db_url)
    try:
        running = [j for j in (await job_list(db, flow_id)).values()
                   if j.status is JobStatus.RUNNING]
        for job in running:
            await finish(db, job.id, JobStatus.COMPLETED)
        for queue in ("extract", "embed", "assemble"):
            for job in await claim(db, queue):
                await finish(db, job.id, JobStatus.COMPLETED, result={"ok": True})
    finally:
        await db.dispose()


def test_flows_show_draws_the_status_progress_and_tree(db_url: str) -> None:
    flow = asyncio.run(_setup(db_url))
    code, out, _ = run(db_url, "flows", "show", flow.id)
    assert code == 0, out
    assert f"flow {flow.id} ingest-pdf running" in out
    assert "25%  1/4 completed, 1 running, 2 pending, 0 failed, 0 cancelled" in out
    lines = out.splitlines()
    assert any(line.startswith("assemble #")
               and "pending step=waiting-children queue=assemble" in line for line in lines)
    assert any("── extract #" in line and "completed step=running queue=extract" in line
               for line in lines)
    assert any("embed #" in line and "pending step=queued queue=embed" in line
               and "[chunk not_started" in line for line in lines)
    assert any("notify #" in line and " running" in line for line in lines)
    code, out, _ = run(db_url, "flows", "show", flow.id, "--max-jobs", "2")
    assert "2 more jobs not shown" in out and "notify" not in out
    code, _, err = run(db_url, "flows", "show", "01a209ed-0000-7000-8000-000000000000")
    assert code == 1 and "not found" in err


def test_flows_show_watch_follows_the_flow_to_its_end(db_url: str) -> None:
    flow = asyncio.run(_setup(db_url))

    def later() -> None:
        time.sleep(0.3)
        asyncio.run(_complete_everything(db_url, flow.id))

    worker = threading.Thread(target=later)
    worker.start()
    started = time.monotonic()
    code, out, _ = run(db_url, "flows", "show", flow.id, "--watch", "--interval", "0.05")
    worker.join()
    assert code == 0, out
    assert time.monotonic() - started >= 0.3  # it waited for the flow to finish
    assert f"flow {flow.id} ingest-pdf completed" in out
    assert "100%  4/4 completed" in out and "result: {'ok': True}" in out


def test_flows_ls_lists_and_filters(db_url: str) -> None:
    flow = asyncio.run(_setup(db_url))
    env_wide = ["flows", "ls"]
    code, out, _ = run(db_url, *env_wide)
    assert code == 0, (out, _)
    assert "ingest-pdf" in out and "other" in out
    code, out, _ = run(db_url, "flows", "ls", "--tenant", "t1", "--status", "active")
    assert code == 0 and "ingest-pdf" in out and "other" not in out and flow.id[:8] in out
    code, out, err = run(db_url, "flows", "ls", "--flowname", "nothing-like-it")
    assert code == 0 and "no flows" in err
    code, _, err = run(db_url, "flows", "ls", "--status", "bogus")
    assert code == 1 and "canonical values" in err
