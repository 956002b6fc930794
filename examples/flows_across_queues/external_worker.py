"""An external worker for queue ``embed``, standing in for a worker written in another
language: it talks to jobtrack only over HTTP with an API key (no jobtrack Python API).
It claims ``embed_chunks`` jobs with ``POST /queues/embed/claim``, finds the flow in the
job itself (``flowId``, also in ``data.flowId``: the seed's flowId injection), and
reports the job's progress and completion with ``PUT /flows/{flowId}/jobs/{jobId}``
(the seed's ``FlowUpdateRequest``: ``{status, result?, error?}``, plus ``progress``).

With ``jobtrack serve`` running and a key::

    python -m examples.flows_across_queues.external_worker --url http://127.0.0.1:8000 \\
        --key "$KEY" --jobs 1

It prints each report and jobtrack's answer.
"""

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
from rich.console import Console

# the status contract; a worker in another language uses its generated copy (contract/)
from jobtrack import JobStatus

EMBED_QUEUE = "embed"
EMBED_TASK = "embed_chunks"
VECTORS_PER_CHUNK = 16

#: called after each report with the job as jobtrack answered it
OnReport = Callable[[dict[str, Any]], None]


class ExternalWorker:
    """Claims jobs of queue ``embed`` and reports them to their flow, over plain HTTP."""

    def __init__(self, url: str, key: str, *, pause: float = 0.2,
                 console: Console | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=10,
                                 headers={"Authorization": f"Bearer {key}"})
        self.pause = pause
        self.console = console or Console(highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.http.close()

    def claim(self) -> dict[str, Any] | None:
        """One runnable ``embed_chunks`` job, now running under this key's lease."""
        r = self.http.post(f"/queues/{EMBED_QUEUE}/claim",
                           json={"names": [EMBED_TASK], "limit": 1})
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["items"]
        return items[0] if items else None

    def report(self, job: dict[str, Any], status: JobStatus, **fields: Any) -> dict[str, Any]:
        """``PUT /flows/{flowId}/jobs/{jobId}``: the job's status, and result, error or
        progress; a report by the claiming key also renews its lease."""
        r = self.http.put(f"/flows/{job['flowId']}/jobs/{job['jobId']}",
                          json={"status": status.value, **fields})
        r.raise_for_status()
        answer: dict[str, Any] = r.json()
        progress = answer["progress"]
        self.console.print(f"{job['jobId']}  reported {status.value:<9} -> "
                           f"{answer['status']:<9} {progress['percentage'] or 0:g}%")
        return answer

    def work(self, job: dict[str, Any], on_report: OnReport | None = None) -> dict[str, Any]:
        """Embed the job's chunks one by one, reporting progress after each; complete the
        job with its result, or fail it with the error."""
        try:
            chunks = int(job["data"]["chunks"])
            for done in range(1, chunks + 1):
                time.sleep(self.pause)  # the work of one chunk
                answer = self.report(job, JobStatus.RUNNING,
                                     progress={"done": done, "total": chunks})
                if on_report is not None:
                    on_report(answer)
        except (KeyError, TypeError, ValueError) as exc:
            return self.report(job, JobStatus.FAILED,
                               error={"message": f"{type(exc).__name__}: {exc}"})
        return self.report(job, JobStatus.COMPLETED,
                           result={"chunks": chunks, "vectors": chunks * VECTORS_PER_CHUNK})

    def run(self, jobs: int = 1, timeout: float = 60.0,
            on_report: OnReport | None = None) -> list[dict[str, Any]]:
        """Claim and work ``jobs`` jobs (polling while there are none); the finished jobs."""
        deadline = time.monotonic() + timeout
        finished: list[dict[str, Any]] = []
        while len(finished) < jobs:
            job = self.claim()
            if job is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no {EMBED_TASK} job to claim after {timeout:g} s")
                time.sleep(0.1)
                continue
            self.console.print(f"{job['jobId']}  claimed from {EMBED_QUEUE} "
                               f"(flow {job['data']['flowId']})")
            finished.append(self.work(job, on_report))
        return finished


def main() -> None:
    parser = argparse.ArgumentParser(description="an external worker of queue embed")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("JOBTRACK_KEY"),
                        help="an API key (default: $JOBTRACK_KEY)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs to run before exiting")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds per chunk")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for a job")
    args = parser.parse_args()
    if not args.key:
        parser.error("--key (or JOBTRACK_KEY) is required")
    worker = ExternalWorker(args.url, args.key, pause=args.pause)
    try:
        worker.run(args.jobs, args.timeout)
    finally:
        worker.close()


if __name__ == "__main__":
    main()
