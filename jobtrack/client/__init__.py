"""A Python client of jobtrack's HTTP API (async, httpx)::

    async with Client("http://localhost:8000", api_key) as jt:
        job = await jt.create_job("emails", "send", data={"to": "a@example.com"})
        async for event in jt.watch(job_id=job["jobId"]):
            print(event["type"], event["data"])

Answers are the API's JSON (camelCase). Errors raise :class:`ApiError` carrying the
API's error envelope.
"""

from jobtrack.client.core import Client
from jobtrack.client.errors import ApiError

__all__ = ["ApiError", "Client"]
