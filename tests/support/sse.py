"""Server-Sent Events readers: frame by frame over an open response (``SseReader``), or
a ``GET /events`` stream opened with a key and a ``Last-Event-ID`` (``SseStream``)."""

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson

from support.keys import bearer


class SseReader:
    """Reads an SSE response frame by frame: ``(fields, comments)`` per frame. With
    ``require_id`` every event frame must carry its envelope's id."""

    def __init__(self, response: httpx.Response, require_id: bool = False) -> None:
        self._lines = response.aiter_lines()
        self._require_id = require_id

    async def frame(self, timeout: float = 5.0) -> tuple[dict[str, str], list[str]]:
        fields: dict[str, str] = {}
        comments: list[str] = []
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if not line:
                    if fields or comments:
                        return fields, comments
                    continue
                if line.startswith(":"):
                    comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        raise EOFError("stream ended")

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event frame (comments and retry hints skipped), parsed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError
            fields, _ = await self.frame(left)
            if "data" in fields:
                envelope: dict[str, Any] = orjson.loads(fields["data"])
                assert fields.get("event") == envelope["type"], fields
                if self._require_id or "id" in fields:
                    assert fields.get("id") == str(envelope["id"]), fields
                return envelope

    async def events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [await self.event(timeout) for _ in range(n)]

    async def silent(self, seconds: float) -> bool:
        """True when no event frame arrives for ``seconds``."""
        try:
            await self.event(seconds)
        except TimeoutError:
            return True
        return False


class SseStream:
    """An open ``GET /events`` stream, read one event envelope at a time."""

    def __init__(self, client: httpx.AsyncClient, key: str, last_event_id: int) -> None:
        self._cm: AbstractAsyncContextManager[httpx.Response] = client.stream(
            "GET", "/events", headers={**bearer(key), "Last-Event-ID": str(last_event_id)})
        self._reader: SseReader | None = None

    async def open(self) -> "SseStream":
        response = await self._cm.__aenter__()
        assert response.status_code == 200, response.status_code
        self._reader = SseReader(response, require_id=True)
        return self

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next event frame's envelope (comments and the retry hint skipped)."""
        assert self._reader is not None
        try:
            return await self._reader.event(timeout)
        except EOFError:
            raise EOFError("the event stream ended") from None

    async def read_until(self, last_id: int) -> list[dict[str, Any]]:
        """Events up to and including the one with id ``last_id``."""
        out: list[dict[str, Any]] = []
        while not out or out[-1]["id"] < last_id:
            out.append(await self.next_event())
        return out


