"""Which URLs webhooks may call, and the signature receivers check (no database)."""

import hashlib
import hmac
import ipaddress

import pytest

from jobtrack.errors import ValidationFailed
from jobtrack.webhooks.signing import new_secret, sign, verify
from jobtrack.webhooks.urls import IPAddress, check_url


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in addresses]
    return resolver


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/hook", "scheme 'ftp'"),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("//example.com/hook", r"scheme '\(none\)'"),
    ("http:///nohost", "no host"),
    ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
    ("http://169.254.10.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host"),
    ("http://METADATA.google.internal./", "cloud metadata host"),
    ("http://0.0.0.0:8080/", "not a unicast address"),
    ("http://example.com:99999/", "not a valid URL"),
])
async def test_refused_always(url: str, reason: str) -> None:
    with pytest.raises(ValidationFailed, match=reason) as exc:
        await check_url(url, block_private=False, resolver=resolving_to("93.184.216.34"))
    assert exc.value.details["field"] == "url"


async def test_a_name_resolving_to_a_refused_address_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"hooks\.evil\.test -> 169\.254\.169\.254"):
        await check_url("https://hooks.evil.test/x", block_private=False,
                        resolver=resolving_to("93.184.216.34", "169.254.169.254"))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "https://10.1.2.3/hook", "http://[::1]:9000/",
    "http://192.168.0.10/", "https://93.184.216.34/",
])
async def test_loopback_and_private_allowed_by_default(url: str) -> None:
    await check_url(url, block_private=False)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "https://10.1.2.3/hook", "http://[::1]:9000/",
    "http://192.168.0.10/", "http://100.64.0.1/", "http://[fc00::1]/",
])
async def test_block_private_refuses_non_global_addresses(url: str) -> None:
    with pytest.raises(ValidationFailed, match="JOBTRACK_WEBHOOK_BLOCK_PRIVATE"):
        await check_url(url, block_private=True)


async def test_block_private_checks_what_names_resolve_to() -> None:
    with pytest.raises(ValidationFailed, match=r"internal\.test -> 10\.0\.0\.7"):
        await check_url("https://internal.test/", block_private=True,
                        resolver=resolving_to("10.0.0.7"))
    await check_url("https://public.test/", block_private=True,
                    resolver=resolving_to("93.184.216.34"))


async def test_unresolvable_hosts_are_refused() -> None:
    async def fails(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    with pytest.raises(ValidationFailed, match="does not resolve"):
        await check_url("https://nowhere.invalid/", block_private=False, resolver=fails)


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    secret, body = "whsec_test", b'{"id":1,"type":"job.completed"}'
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert sign(secret, body) == f"sha256={expected}"
    assert verify(secret, body, f"sha256={expected}")
    assert not verify(secret, body + b" ", f"sha256={expected}")
    assert not verify("other", body, f"sha256={expected}")
    assert not verify(secret, body, None)
    assert new_secret() != new_secret() and new_secret().startswith("whsec_")


@pytest.mark.parametrize("block_private", [False, True])
@pytest.mark.parametrize("url", [
    "http://[::a9fe:a9fe]/",                              # IPv4-compatible
    "http://[::ffff:169.254.169.254]/",                   # IPv4-mapped
    "http://[::ffff:0:a9fe:a9fe]/",                       # IPv4-translated (SIIT)
    "http://[64:ff9b::a9fe:a9fe]/",                       # NAT64, well-known prefix
    "http://[64:ff9b::169.254.169.254]/",
    "http://[64:ff9b:1:a9fe:a9:fe00::]/",                 # NAT64, local-use /48
    "http://[2002:a9fe:a9fe::1]/",                        # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",     # Teredo, client 169.254.169.254
    "http://[2001:0:a9fe:a9fe::1]/",                      # Teredo, server 169.254.169.254
    "http://[2001:db8::5efe:a9fe:a9fe]/",                 # ISATAP interface id
])
async def test_ipv4_embedded_in_ipv6_is_decoded_and_checked(
    url: str, block_private: bool
) -> None:
    with pytest.raises(ValidationFailed, match=r"169\.254\.169\.254"):
        await check_url(url, block_private=block_private)
    # the same forms behind a name
    with pytest.raises(ValidationFailed, match=r"169\.254\.169\.254"):
        await check_url("https://hooks.test/", block_private=block_private,
                        resolver=resolving_to(url.split("[")[1].split("]")[0]))


@pytest.mark.parametrize("url", [
    "http://[::a00:7]/", "http://[64:ff9b::10.0.0.7]/", "http://[2002:a00:7::1]/",
    "http://[64:ff9b::127.0.0.1]/",
])
async def test_a_private_ipv4_embedded_in_ipv6_is_refused_by_block_private(url: str) -> None:
    with pytest.raises(ValidationFailed, match="JOBTRACK_WEBHOOK_BLOCK_PRIVATE"):
        await check_url(url, block_private=True)


async def test_a_public_ipv4_embedded_in_ipv6_passes() -> None:
    for url in ("http://[64:ff9b::93.184.216.34]/", "http://[2002:5db8:d822::1]/"):
        await check_url(url, block_private=True)
