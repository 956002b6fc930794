"""Attempting deliveries: one signed POST per attempt, and the loop that claims due
deliveries and records what happened.

An attempt POSTs the event envelope (the exact bytes that were signed) with
``X-Jobtrack-Event``, ``X-Jobtrack-Delivery`` and ``X-Jobtrack-Signature``. A 2xx answer
delivers it; any other answer, a timeout or a connection error schedules the next attempt
with exponential backoff (``RetryPolicy``), until ``webhook_max_attempts``; then it is
``failed``. A URL whose host now resolves to a refused address fails at once; otherwise
the POST connects to an address that check passed (with the URL's host in ``Host`` and,
for https, in TLS's server name and certificate check), so a name that changes between
the check and the connection is never called where it now points.

The loop runs up to ``webhook_concurrency`` attempts at a time on its own tasks, so a slow
receiver never slows the API. It claims only deliveries first in line for their job and
webhook (``store.webhooks.claim_due``), so a job's events arrive in order. Receivers
should deduplicate on ``X-Jobtrack-Delivery``: a process that dies mid-attempt leaves the
delivery to be attempted again when its lease ends (at-least-once).
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.status import DeliveryStatus
from jobtrack.events.loops import cancelling
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.webhooks import ClaimedDelivery, claim_due, next_due_at, record_attempt
from jobtrack.webhooks.signing import delivery_headers
from jobtrack.webhooks.urls import IPAddress, Resolver, check_url

log = logging.getLogger(__name__)

#: longest wait between two looks for due deliveries (other processes store them too)
IDLE_POLL_SECONDS = 1.0
#: kept of a refusing receiver's answer in ``last_error``
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    #: False when another attempt cannot help (the URL is refused)
    retry: bool = True


async def attempt(
    client: httpx.AsyncClient,
    claimed: ClaimedDelivery,
    *,
    timeout: float,
    block_private: bool,
    resolver: Resolver | None = None,
) -> Outcome:
    """POST one delivery once."""
    if claimed.event is None:
        return Outcome(False, error="the event is no longer stored (retention)", retry=False)
    try:
        addresses = await check_url(claimed.url, block_private=block_private,
                                    resolver=resolver)
    except Exception as exc:  # refused or unresolvable now
        reason = getattr(exc, "message", str(exc))
        return Outcome(False, error=reason, retry="does not resolve" in reason)
    body = orjson.dumps(claimed.event.envelope())
    headers = delivery_headers(claimed.secret, body, event_type=claimed.event.type,
                               delivery_id=claimed.delivery.id)
    try:
        response = await _post_pinned(client, claimed.url, addresses, content=body,
                                      headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        return Outcome(False, error=f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    text = response.text[:MAX_ERROR_CHARS]
    return Outcome(False, response.status_code, f"HTTP {response.status_code}: {text}")


async def _post_pinned(
    client: httpx.AsyncClient, url: str, addresses: list[IPAddress], *, content: bytes,
    headers: dict[str, str], timeout: float,
) -> httpx.Response:
    """POST to ``url`` at one of ``addresses`` (in order; the next one when connecting
    fails), as if its host had resolved to it."""
    target = httpx.URL(url)
    pinned_headers = {**headers, "Host": target.netloc.decode("ascii")}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    failed: httpx.ConnectError | None = None
    for address in addresses:
        try:
            return await client.post(target.copy_with(host=str(address)), content=content,
                                     headers=pinned_headers, timeout=timeout,
                                     extensions=extensions)
        except httpx.ConnectError as exc:
            failed = exc
    assert failed is not None  # check_url returns at least one address
    raise failed


class Deliverer:
    """Claims due deliveries and attempts them, ``webhook_concurrency`` at a time."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.resolver = resolver
        self.policy = RetryPolicy(base=settings.webhook_retry_base_seconds,
                                  cap=settings.webhook_retry_cap_seconds)
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        #: attempts still waiting for the receiver (the only part ``stop`` cancels)
        self._posting: set[asyncio.Task[Any]] = set()
        #: attempts by outcome (metrics)
        self.delivered = 0
        self.retried = 0
        self.failed = 0

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left to this process."""
        return timedelta(seconds=self.settings.webhook_timeout_seconds * 2 + 30)

    def wake(self) -> None:
        """New deliveries were stored: look now."""
        self._wake.set()

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def stop(self) -> None:
        """End the loop at its next pause; attempts waiting for a receiver are abandoned
        (their leases end and they are attempted again later), attempts being recorded
        finish first: a write transaction is never cancelled half-way (on SQLite that
        could strand the write lock)."""
        self._stopping = True
        self._wake.set()
        await self.close()

    async def close(self) -> None:
        for task in list(self._posting):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            return await claim_due(conn, now=now, lease_until=now + self.lease, limit=limit)

    async def deliver(self, claimed: ClaimedDelivery) -> Outcome | None:
        """Attempt one claimed delivery and record the outcome (None: abandoned by
        ``stop`` while waiting for the receiver)."""
        posting = asyncio.ensure_future(attempt(
            self.client(), claimed, timeout=self.settings.webhook_timeout_seconds,
            block_private=self.settings.webhook_block_private, resolver=self.resolver,
        ))
        self._posting.add(posting)
        try:
            outcome = await posting
        except asyncio.CancelledError:
            if posting.cancelled() and not cancelling():
                return None  # abandoned by stop: the lease ends, it is attempted again
            raise
        finally:
            self._posting.discard(posting)
        await self.record(claimed, outcome)
        return outcome

    async def record(self, claimed: ClaimedDelivery, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        tries = claimed.delivery.attempts
        if outcome.delivered:
            status, when = DeliveryStatus.DELIVERED, now
            self.delivered += 1
        elif outcome.retry and tries < self.settings.webhook_max_attempts:
            status, when = DeliveryStatus.PENDING, self.policy.next_run_at(tries, now)
            self.retried += 1
        else:
            status, when = DeliveryStatus.FAILED, now
            self.failed += 1
        async with self.db.write() as conn:
            current = await record_attempt(
                conn, claimed.delivery, status=status, next_attempt_at=when,
                status_code=outcome.status_code, error=outcome.error, now=now,
            )
        if not current:
            log.warning("delivery %d: attempt %d finished after its lease ended",
                        claimed.delivery.id, tries)
        if status is not DeliveryStatus.PENDING:
            self.wake()  # the next delivery of the same job may now go

    async def run_once(self) -> int:
        """Claim what there is room for and start attempting it; the number started."""
        room = self.settings.webhook_concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        claimed = await self.claim(room)
        for c in claimed:
            task = asyncio.create_task(self._guarded(c), name=f"webhook-delivery-{c.delivery.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed)

    async def _guarded(self, claimed: ClaimedDelivery) -> None:
        try:
            await self.deliver(claimed)
        except Exception:  # recorded nowhere: the lease ends and it is attempted again
            if cancelling():
                raise
            log.exception("delivery %d: attempt could not be recorded", claimed.delivery.id)
        finally:
            self.wake()

    async def run(self) -> None:
        """Attempt deliveries until ``stop`` (or cancelled)."""
        backoff = 0.1
        try:
            while not self._stopping and not cancelling():
                self._wake.clear()
                try:
                    started = await self.run_once()
                    wait = await self._idle_wait() if not started else 0.0
                    backoff = 0.1
                except Exception as exc:
                    if cancelling():
                        raise
                    log.warning("webhook delivery loop: %s; retrying in %.1f s", exc, backoff)
                    wait, backoff = backoff, min(5.0, backoff * 2)
                if wait > 0 and not self._stopping:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
        finally:
            await self.close()

    async def _idle_wait(self) -> float:
        """Seconds until the earliest pending delivery is due, at most the idle poll."""
        async with self.db.read() as conn:
            due = await next_due_at(conn)
        if due is None:
            return IDLE_POLL_SECONDS
        # (a due one not claimed is being claimed by another process right now)
        return max(0.01, min(IDLE_POLL_SECONDS, (due - datetime.now(UTC)).total_seconds()))
