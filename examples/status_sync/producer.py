"""A legacy producer (seed 000): it still reports ``QUEUED``, ``STARTED``, ``ERROR`` and
``COMPLETED`` over HTTP with an API key. jobtrack takes those values as aliases during the
deprecation window and answers with the canonical status and a ``Deprecation`` header
naming both, so the producer can be migrated later while every reader already sees only
canonical values.

With ``jobtrack serve`` running and a key (``jobtrack keys create --tenant kubegram``)::

    python -m examples.status_sync.producer --url http://127.0.0.1:8000 --key "$KEY"

It runs two jobs (one completes, one fails), ``--pause`` seconds between reports, so
that ``consumer.ts``, started first, sees them move.
"""

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

QUEUE = "kubegram"


@dataclass(frozen=True)
class Answer:
    """What jobtrack answered to one legacy report."""

    sent: str
    status: str
    deprecation: str | None
    job: dict[str, Any]


class LegacyProducer:
    """Creates jobs and reports their progress with the legacy status values."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10,
                                 headers={"Authorization": f"Bearer {key}"})

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the server answers ``GET /readyz`` (it may still be starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.http.base_url} is not ready after {timeout:g} s")
            time.sleep(0.2)

    def close(self) -> None:
        self.http.close()

    def create(self, name: str, **data: Any) -> str:
        r = self.http.post("/jobs", json={"queueName": QUEUE, "name": name, "data": data})
        r.raise_for_status()
        job_id: str = r.json()["jobId"]
        return job_id

    def report(self, job_id: str, legacy_status: str, **fields: Any) -> Answer:
        """``PATCH /jobs/{id}`` with a legacy status (and wire fields: progress, error...)."""
        r = self.http.patch(f"/jobs/{job_id}", json={"status": legacy_status, **fields})
        r.raise_for_status()
        job: dict[str, Any] = r.json()
        return Answer(legacy_status, job["status"], r.headers.get("Deprecation"), job)


def produce(producer: LegacyProducer, console: Console, pause: float = 0.5
            ) -> tuple[list[str], list[Answer]]:
    """Run one job to ``COMPLETED`` and one to ``ERROR``: their ids, and every answer."""
    answers: list[Answer] = []
    producer.wait_ready()

    def say(job_id: str, legacy: str, **fields: Any) -> None:
        time.sleep(pause)
        answer = producer.report(job_id, legacy, **fields)
        answers.append(answer)
        console.print(f"{job_id}  sent {legacy:<9} -> {answer.status:<9} "
                      f"Deprecation: {answer.deprecation}")

    ok = producer.create("generate-graph", cluster="staging")
    broken = producer.create("generate-graph", cluster="prod-eu")
    say(ok, "QUEUED")
    say(ok, "STARTED", progress=40)
    say(ok, "COMPLETED", result={"nodes": 12})
    say(broken, "STARTED")
    say(broken, "ERROR", error={"message": "cluster unreachable"})
    return [ok, broken], answers


def main() -> None:
    parser = argparse.ArgumentParser(description="a legacy producer of job statuses")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("JOBTRACK_KEY"),
                        help="an API key (default: $JOBTRACK_KEY)")
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds between two reports")
    args = parser.parse_args()
    if not args.key:
        parser.error("--key (or JOBTRACK_KEY) is required")
    producer = LegacyProducer(args.url, args.key)
    try:
        produce(producer, Console(highlight=False, soft_wrap=True), args.pause)
    finally:
        producer.close()


if __name__ == "__main__":
    main()
