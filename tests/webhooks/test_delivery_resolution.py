"""A webhook's host name is resolved again at each delivery, and the POST goes to the
address that check passed (never to a second, unchecked resolution): real deliveries to
a receiver on 127.0.0.1, under a resolver the test controls."""

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_delivery import SECRET, add_events, deliver_all, dispatch_all, mock_client

from jobtrack.domain.ids import new_id
from jobtrack.domain.status import DeliveryStatus
from jobtrack.errors import ValidationFailed
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.webhooks import Delivery, list_deliveries
from jobtrack.webhooks import registry
from jobtrack.webhooks.delivery import Deliverer
from jobtrack.webhooks.dispatcher import Dispatcher
from jobtrack.webhooks.urls import IPAddress
from support.webhooks import receiving

HOST = "hooks.jobtrack.test"  # resolved by the test's resolver only, never by the system


class Resolver:
    """Resolves every name to ``address`` (changed by the test as it goes)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return [ipaddress.ip_address(self.address)]


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "webhook_retry_base_seconds": 0.05, "webhook_retry_cap_seconds": 0.2,
        "webhook_max_attempts": 3, "webhook_timeout_seconds": 2.0,
    })


async def _one_delivery(db: Database, settings: Settings, url: str,
                        resolver: Resolver) -> tuple[str, Any]:
    await Dispatcher(db, settings).prepare()
    created = await registry.create_webhook(db, settings, tenant="t1", url=url,
                                            events=["all"], secret=SECRET, resolver=resolver)
    await add_events(db, [{"type": "job.completed", "job_id": new_id()}])
    await dispatch_all(db, settings)
    return created.id, resolver


async def _delivery(db: Database, hook_id: str) -> Delivery:
    async with db.read() as conn:
        [delivery] = await list_deliveries(conn, hook_id, limit=5)
    return delivery


async def test_the_post_goes_to_the_address_the_check_passed(
    db: Database, fast: Settings
) -> None:
    with receiving() as receiver:
        port = urlsplit(receiver.url).port
        resolver = Resolver("127.0.0.1")
        hook_id, _ = await _one_delivery(db, fast, f"http://{HOST}:{port}/hook", resolver)
        await deliver_all(Deliverer(db, fast, resolver=resolver))
    delivery = await _delivery(db, hook_id)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.last_error
    assert len(receiver.delivered()) == 1
    assert resolver.asked == [HOST, HOST]  # at registration, then at the delivery


async def test_a_name_that_now_resolves_to_a_refused_address_is_refused_at_delivery(
    db: Database, fast: Settings
) -> None:
    with receiving() as receiver:
        port = urlsplit(receiver.url).port
        resolver = Resolver("127.0.0.1")
        hook_id, _ = await _one_delivery(db, fast, f"http://{HOST}:{port}/hook", resolver)
        resolver.address = "169.254.169.254"
        await deliver_all(Deliverer(db, fast, resolver=resolver))
    delivery = await _delivery(db, hook_id)
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.last_error is not None and "169.254.169.254" in delivery.last_error
    assert receiver.got == []


async def test_block_private_refuses_a_name_that_turned_private_at_delivery(
    db: Database, fast: Settings
) -> None:
    strict = fast.model_copy(update={"webhook_block_private": True})
    with receiving() as receiver:
        port = urlsplit(receiver.url).port
        url = f"http://{HOST}:{port}/hook"
        with pytest.raises(ValidationFailed, match="JOBTRACK_WEBHOOK_BLOCK_PRIVATE"):
            await registry.create_webhook(db, strict, tenant="t1", url=url, events=["all"],
                                          secret=SECRET, resolver=Resolver("127.0.0.1"))
        resolver = Resolver("93.184.216.34")  # public when registered ...
        hook_id, _ = await _one_delivery(db, strict, url, resolver)
        resolver.address = "127.0.0.1"  # ... loopback when delivered
        await deliver_all(Deliverer(db, strict, resolver=resolver))
    delivery = await _delivery(db, hook_id)
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.last_error is not None and "127.0.0.1" in delivery.last_error
    assert receiver.got == []


async def test_https_keeps_the_name_for_host_and_tls_while_connecting_to_the_address(
    db: Database, fast: Settings
) -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    resolver = Resolver("93.184.216.34")
    hook_id, _ = await _one_delivery(db, fast, f"https://{HOST}/in", resolver)
    await deliver_all(Deliverer(db, fast, resolver=resolver, client=mock_client(receiver)))
    assert (await _delivery(db, hook_id)).status is DeliveryStatus.DELIVERED
    [request] = seen
    assert request.url.host == "93.184.216.34" and request.url.scheme == "https"
    assert request.headers["host"] == HOST
    assert request.extensions["sni_hostname"] == HOST  # the certificate is checked for it
