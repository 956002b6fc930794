"""CLI start-up: wall time of ``jobtrack --help`` and of the listing commands, each a fresh
process, median (and min) over ``--runs`` runs. Target (issue 10): under 0.3 s for each.

The listings read a temporary SQLite database with a few jobs and a flow (made once,
before timing), so each run does the real work: open the file, check the schema revision,
query, draw the table. ``import jobtrack.cli`` alone is timed too: what every command pays.

Runs read compiled bytecode, as an installed jobtrack does: an editable install with
``PYTHONDONTWRITEBYTECODE`` set would otherwise compile jobtrack's sources again in every
run. The bytecode goes to a temporary ``PYTHONPYCACHEPREFIX`` (nothing is written beside
the sources), filled by one untimed run of each command.

    .venv/bin/python bench/bench_cli_startup.py --runs 15
"""

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.3


def _seed(url: str) -> None:
    from jobtrack.queue.app import App
    from jobtrack.queue.flows import FlowJob
    from jobtrack.store import migrate

    migrate.upgrade(url)  # (older versions' App did not migrate a new file itself)

    async def go() -> None:
        async with App(url) as app:
            for i in range(5):
                await app.enqueue("ingest", _queue="ingest", document_id=f"d{i}")
            await app.enqueue_flow("docs", FlowJob("merge", _queue="ingest", children=[
                FlowJob("ingest", _queue="ingest", document_id="x")]))

    asyncio.run(go())


def _time(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system) of each run, after an untimed one."""
    subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    took, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        took.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return took, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()
    jobtrack = str(Path(sys.executable).with_name("jobtrack"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _seed(url)
        env = {**os.environ, "JOBTRACK_DATABASE_URL": url, "COLUMNS": "80",
               "PYTHONPYCACHEPREFIX": str(Path(tmp) / "bytecode")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cases = {
            "python -c 'import jobtrack.cli'": [sys.executable, "-c", "import jobtrack.cli"],
            "jobtrack --help": [jobtrack, "--help"],
            "jobtrack jobs ls": [jobtrack, "jobs", "ls"],
            "jobtrack flows ls": [jobtrack, "flows", "ls"],
            "jobtrack keys ls": [jobtrack, "keys", "ls"],
            "jobtrack webhooks ls": [jobtrack, "webhooks", "ls"],
            "jobtrack tasks ls": [jobtrack, "tasks", "ls"],
            "jobtrack workers ls": [jobtrack, "workers", "ls"],
        }
        baseline, _ = _time([sys.executable, "-c", "pass"], env, opts.runs)
        print(f"{opts.runs} runs each; bare python start-up: median "
              f"{statistics.median(baseline):.3f} s; load average {os.getloadavg()[0]:.1f} "
              "(on a busy machine wall time overstates; CPU time is steadier)")
        print(f"{'command':30} {'wall median':>11} {'wall min':>9} {'cpu median':>10}  "
              f"target {TARGET} s (wall)")
        for label, args in cases.items():
            took, cpu = _time(args, env, opts.runs)
            median = statistics.median(took)
            verdict = "" if label.startswith("python") else (
                "met" if median < TARGET else "NOT met")
            print(f"{label:30} {median:11.3f} {min(took):9.3f} {statistics.median(cpu):10.3f}"
                  f"  {verdict}")


if __name__ == "__main__":
    main()
