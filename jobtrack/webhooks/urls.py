"""Which webhook URLs jobtrack will call.

Always refused: schemes other than http and https; link-local addresses
(169.254.0.0/16, fe80::/10), where cloud instance metadata lives; the known metadata
addresses and names (169.254.169.254, fd00:ec2::254, metadata.google.internal, ...);
unspecified and multicast addresses. Loopback and private ranges are allowed by default
(local development, tests) and refused with ``JOBTRACK_WEBHOOK_BLOCK_PRIVATE=true``, the
production setting: then only globally routable addresses are called.

An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-compatible,
IPv4-translated, NAT64, 6to4, Teredo, ISATAP) reaches that IPv4 address through a
gateway: the embedded address is checked too, and refuses the URL when it would be.

Host names are resolved when a webhook is registered and again before each delivery,
so a name that later points somewhere refused is not called; the delivery then connects
to an address that check passed (``jobtrack.webhooks.delivery``), never to a second,
unchecked resolution of the name.
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


_NAT64_WELL_KNOWN: Final = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED: Final = ipaddress.ip_network("::ffff:0:0:0/96")
_LOW32: Final = 0xFFFF_FFFF


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and reaches through a gateway)."""
    value = int(addr)
    found: list[ipaddress.IPv4Address] = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if addr in _IPV4_COMPATIBLE or addr in _IPV4_TRANSLATED or addr in _NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & _LOW32))
    if addr in _NAT64_LOCAL:  # RFC 6052, a /48 prefix: bits 64-71 (the "u" octet) skipped
        found.append(ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16
                                           | (value >> 40) & 0xFFFF))
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)  # (server, client), the client's bits already restored
    if (value >> 32) & 0xFDFF_FFFF == 0x0000_5EFE:  # ISATAP: ::0:5efe:V4 or ::200:5efe:V4
        found.append(ipaddress.IPv4Address(value & _LOW32))
    return found


def address_refusal(addr: IPAddress, *, block_private: bool) -> str | None:
    """Why ``addr`` may not be called, or None (an IPv6 address: neither it nor an IPv4
    address it carries may be refused)."""
    if isinstance(addr, ipaddress.IPv6Address):
        for inner in embedded_ipv4(addr):
            reason = _refusal(inner, block_private=block_private)
            if reason is not None:
                return reason if addr.ipv4_mapped == inner else f"{addr} carries {reason}"
    return _refusal(addr, block_private=block_private)


def _refusal(addr: IPAddress, *, block_private: bool) -> str | None:
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
) -> list[IPAddress]:
    """Refuse ``url`` (``ValidationFailed`` naming the reason) unless jobtrack may call it;
    return the addresses its host has now, every one of them allowed."""
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
    return addresses
