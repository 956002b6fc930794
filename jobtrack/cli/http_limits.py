"""The HTTP/1.1 protocol ``jobtrack serve`` runs: uvicorn's (httptools), with the request
head bounded. A request with more than ``max_header_count`` headers, or a head (request
line and headers) over ``max_header_bytes``, is answered ``431 Request Header Fields Too
Large`` and its connection closed, before the rest is read and before any route runs.

httptools itself reads headers of any number and size (a single header is buffered until
its end, however far): the count and the bytes of a head still incomplete are checked as
data arrives, so at most one network read more than the limit is ever buffered.
"""

import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431 = b"request header fields too large"


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limits."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the request head bounded (see the module doc)."""

    def __init__(self, *args: Any, max_header_count: int, max_header_bytes: int,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes
        self._in_head = True  # the next bytes belong to a request head
        self._head_bytes = 0
        self._too_large = False

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes \
                and not self.transport.is_closing():
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_header_count:
            self._too_large = True
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # a pipelined or kept-alive request's head comes next

    def send_400_response(self, msg: str) -> None:
        if self._too_large:  # our callback stopped the parser: not a malformed request
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self.logger.warning("request head over %d headers or %d bytes: 431",
                            self.max_header_count, self.max_header_bytes)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_431), _431))
        self.transport.close()


def http_protocol(*, max_header_count: int, max_header_bytes: int) -> Any:
    """What ``uvicorn.run(http=...)`` takes: the bounded protocol (picklable, for
    ``--workers``)."""
    return functools.partial(LimitedHttpToolsProtocol, max_header_count=max_header_count,
                             max_header_bytes=max_header_bytes)


