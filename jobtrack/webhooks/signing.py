"""Delivery signatures: ``X-Jobtrack-Signature: sha256=<hex HMAC-SHA256 of the body>``,
computed over the exact bytes sent, with the webhook's secret.

A receiver checks it with the same function (constant-time comparison)::

    from jobtrack.webhooks.signing import verify
    assert verify(secret, request_body_bytes, headers["X-Jobtrack-Signature"])
"""

import hashlib
import hmac
import secrets
from typing import Final

EVENT_HEADER: Final = "X-Jobtrack-Event"
DELIVERY_HEADER: Final = "X-Jobtrack-Delivery"
SIGNATURE_HEADER: Final = "X-Jobtrack-Signature"
SECRET_PREFIX: Final = "whsec_"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the signature of ``body`` with ``secret``."""
    return signature is not None and hmac.compare_digest(sign(secret, body), signature)


def new_secret() -> str:
    """A fresh random secret (shown once, when the webhook is created)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def delivery_headers(
    secret: str, body: bytes, *, event_type: str, delivery_id: int
) -> dict[str, str]:
    """Every header of a delivery POST."""
    return {
        "Content-Type": "application/json",
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: str(delivery_id),
        SIGNATURE_HEADER: sign(secret, body),
    }
