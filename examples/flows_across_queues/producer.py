"""Create seed 003's flow over HTTP: ``POST /flows`` with an API key, as the seed's
``createFlow`` does. The parent ``publish_document`` (queue ``publish``) waits for two
children on two queues: ``extract_text`` on ``ingest`` (a jobtrack worker runs it) and
``embed_chunks`` on ``embed`` (an external worker, ``external_worker.py``, reports it).

With ``jobtrack serve`` running and a key (``jobtrack keys create --tenant docs``)::

    python -m examples.flows_across_queues.producer --url http://127.0.0.1:8000 --key "$KEY"

It prints the new flow's id.
"""

import argparse
import os
import time
from typing import Any

import httpx
from rich.console import Console

from examples.flows_across_queues.tasks import (
    EXTRACT_TASK,
    INGEST_QUEUE,
    PUBLISH_QUEUE,
    PUBLISH_TASK,
)

FLOWNAME = "ingest-document"
EMBED_QUEUE = "embed"
EMBED_TASK = "embed_chunks"


def flow_request(document: str, pages: int, chunks: int,
                 flowname: str = FLOWNAME) -> dict[str, Any]:
    """The body of ``POST /flows`` (the seed's ``CreateFlowRequest``): the root job, its
    children, and the flow's human-readable ``flowname``."""
    return {
        "flowname": flowname,
        "name": PUBLISH_TASK, "queueName": PUBLISH_QUEUE, "data": {"document": document},
        "children": [
            {"name": EXTRACT_TASK, "queueName": INGEST_QUEUE,
             "data": {"document": document, "pages": pages}},
            {"name": EMBED_TASK, "queueName": EMBED_QUEUE,
             "data": {"document": document, "chunks": chunks}},
        ],
    }


def wait_ready(http: httpx.Client, timeout: float = 60.0) -> None:
    """Until the server answers ``GET /readyz`` (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{http.base_url} is not ready after {timeout:g} s")
        time.sleep(0.2)


def create_flow(url: str, key: str, *, document: str = "report.pdf", pages: int = 4,
                chunks: int = 4, flowname: str = FLOWNAME) -> dict[str, Any]:
    """``POST /flows``; the answer ``{flowId, flow}`` (201)."""
    with httpx.Client(base_url=url, timeout=10,
                      headers={"Authorization": f"Bearer {key}"}) as http:
        wait_ready(http)
        r = http.post("/flows", json=flow_request(document, pages, chunks, flowname))
        r.raise_for_status()
        created: dict[str, Any] = r.json()
        return created


def main() -> None:
    parser = argparse.ArgumentParser(description="create seed 003's flow across queues")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("JOBTRACK_KEY"),
                        help="an API key (default: $JOBTRACK_KEY)")
    parser.add_argument("--document", default="report.pdf")
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--flowname", default=FLOWNAME)
    args = parser.parse_args()
    if not args.key:
        parser.error("--key (or JOBTRACK_KEY) is required")
    created = create_flow(args.url, args.key, document=args.document, pages=args.pages,
                          chunks=args.chunks, flowname=args.flowname)
    Console(highlight=False, soft_wrap=True).print(created["flowId"])


if __name__ == "__main__":
    main()
