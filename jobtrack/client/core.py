"""The async client: jobs, and ``watch`` over Server-Sent Events with automatic resume.

``watch`` yields event envelopes ``{id, type, at, data}``. When the stream drops (server
restart, network), it reconnects with ``Last-Event-ID`` set to the highest id received,
so the server replays what was missed: no event is lost or repeated across reconnects.
"""

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx
import orjson
from httpx_sse import SSEError, aconnect_sse

from jobtrack.client.errors import ApiError

#: the server sends a keep-alive comment every 15 s by default: a stream silent for
#: longer than this is dead, and is reconnected
STREAM_READ_TIMEOUT = 45.0


class Client:
    """An API client for one base URL and key. Use it as an async context manager, or
    call :meth:`aclose` when done."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
    ) -> None:
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "jobtrack-client"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, path: str, *, json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One API call; the decoded JSON answer (None for 204). Errors: :class:`ApiError`."""
        content = None if json is None else orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else None
        response = await self._http.request(
            method, path, content=content, headers=headers,
            params={k: v for k, v in (params or {}).items() if v is not None},
        )
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return orjson.loads(response.content)

    # --- jobs ----------------------------------------------------------------------

    async def create_job(
        self,
        queue_name: str,
        name: str,
        *,
        data: Mapping[str, Any] | None = None,
        phases: list[str] | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay_seconds: float | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /jobs``: ``{jobId, status, job}``."""
        body: dict[str, Any] = {"queueName": queue_name, "name": name}
        optional = {"data": data, "phases": phases, "priority": priority,
                    "runAt": run_at.isoformat() if run_at is not None else None,
                    "delaySeconds": delay_seconds, "maxAttempts": max_attempts,
                    "idempotencyKey": idempotency_key}
        body.update({k: v for k, v in optional.items() if v is not None})
        created: dict[str, Any] = await self.request("POST", "/jobs", json=body)
        return created

    async def get_job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{jobId}``."""
        job: dict[str, Any] = await self.request("GET", f"/jobs/{job_id}")
        return job

    async def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """``PATCH /jobs/{jobId}`` with wire (camelCase) fields, e.g. ``progress=50``."""
        job: dict[str, Any] = await self.request("PATCH", f"/jobs/{job_id}", json=fields)
        return job

    # --- live updates --------------------------------------------------------------

    async def watch(
        self,
        job_id: str | None = None,
        flow_id: str | None = None,
        queue_name: str | None = None,
        last_event_id: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Event envelopes of the key's tenant, filtered, for as long as the caller
        iterates; replays after ``last_event_id`` first when given. Reconnects with
        backoff after a dropped stream; errors other than 429/5xx raise :class:`ApiError`."""
        params = {"jobId": job_id, "flowId": flow_id, "queueName": queue_name}
        params = {k: v for k, v in params.items() if v is not None}
        last = last_event_id
        delay = self.reconnect_delay
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_READ_TIMEOUT)
        while True:
            headers = {} if last is None else {"Last-Event-ID": str(last)}
            try:
                async with aconnect_sse(self._http, "GET", "/events", params=params,
                                        headers=headers, timeout=timeout) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        error = ApiError.from_response(source.response)
                        if not error.retryable:
                            raise error
                    else:
                        async for sse in source.aiter_sse():
                            if not sse.data:  # the stream's first frame: its position
                                if sse.id.isdigit():
                                    last = max(last or 0, int(sse.id))
                                continue
                            envelope: dict[str, Any] = orjson.loads(sse.data)
                            last = max(last or 0, int(envelope["id"]))
                            delay = self.reconnect_delay
                            yield envelope
            except (httpx.TransportError, SSEError):
                pass  # dropped: reconnect below
            await asyncio.sleep(delay)
            delay = min(self.max_reconnect_delay, delay * 2)
