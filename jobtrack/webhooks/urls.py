"""Which webhook URLs jobtrack will call.

Always refused: schemes other than http and https; link-local addresses
(169.254.0.0/16, fe80::/10), where cloud instance metadata lives; the known metadata
addresses and names (169.254.169.254, fd00:ec2::254, metadata.google.internal, ...);
unspecified and multicast addresses. Loopback and private ranges are allowed by default
(local development, tests) and refused with ``JOBTRACK_WEBHOOK_BLOCK_PRIVATE=true``, the
production setting: then only globally routable addresses are called.

Host names are resolved when a webhook is registered and again before each delivery,
so a name that later points somewhere refused is not called. (A name that changes
between that check and the connection itself is not caught: block private ranges at the
network level too if that matters.)
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from jobtrack.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

SCHEMES: Final = ("http", "https")
MAX_URL_LENGTH: Final = 2000
LINK_LOCAL: Final = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
#: instance metadata services (AWS, AWS IPv6, ECS task metadata, Alibaba, Oracle)
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200",
              "192.0.0.192")
)
METADATA_HOSTS: Final = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
     "instance-data.ec2.internal"}
)


def refused(field: str, url: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"webhook url refused: {reason}",
                            details={"field": field, "value": url, "reason": reason})


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def address_refusal(addr: IPAddress, *, block_private: bool) -> str | None:
    """Why ``addr`` may not be called, or None."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr in METADATA_ADDRESSES:
        return f"{addr} is a cloud metadata address"
    if any(addr in net for net in LINK_LOCAL):
        return f"{addr} is a link-local address"
    if addr.is_unspecified or addr.is_multicast:
        return f"{addr} is not a unicast address"
    if block_private and not addr.is_global:
        return (f"{addr} is a loopback, private or reserved address "
                "(refused by JOBTRACK_WEBHOOK_BLOCK_PRIVATE)")
    return None


def parse_url(url: str, field: str = "url") -> tuple[str, int]:
    """The host and port of a well-formed http(s) URL; ``ValidationFailed`` otherwise."""
    if not url or len(url) > MAX_URL_LENGTH:
        raise refused(field, url[:100], f"must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refused(field, url, f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise refused(field, url, f"scheme {scheme or '(none)'!r} is not allowed; use "
                      "http or https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise refused(field, url, "the URL has no host")
    return host, port or (443 if scheme == "https" else 80)


async def check_url(
    url: str, *, block_private: bool, resolver: Resolver | None = None, field: str = "url"
) -> None:
    """Refuse ``url`` (``ValidationFailed`` naming the reason) unless jobtrack may call it."""
    host, port = parse_url(url, field)
    if host in METADATA_HOSTS:
        raise refused(field, url, f"{host} is a cloud metadata host")
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = await (resolver or system_resolver)(host, port)
        except OSError as exc:
            raise refused(field, url, f"host {host!r} does not resolve ({exc})") from None
    if not addresses:
        raise refused(field, url, f"host {host!r} does not resolve")
    for addr in addresses:
        reason = address_refusal(addr, block_private=block_private)
        if reason is not None:
            raise refused(field, url, reason if str(addr) == host else f"{host} -> {reason}")
