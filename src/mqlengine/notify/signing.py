"""Standard Webhooks signatures (https://www.standardwebhooks.com).

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the signature header is
``v1,<base64 HMAC-SHA256>`` (space-separated when a secret is being rotated). Secrets are
``whsec_`` + base64 of the key. Receivers verify with :func:`verify` (or any Standard
Webhooks library) and dedupe on ``webhook-id``, which never changes across retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from mqlengine.errors import AuthError

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


class SignatureError(AuthError):
    """The payload was not signed with the expected secret (or is too old)."""


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    if secret.startswith(PREFIX):
        return base64.b64decode(secret[len(PREFIX) :])
    return secret.encode("utf-8")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str | None, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    result = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
    if secret:
        result["webhook-signature"] = sign(secret, message_id, timestamp, body)
    return result


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check a delivery's headers; returns the message id or raises :class:`SignatureError`."""
    lower = {k.lower(): v for k, v in received.items()}
    try:
        message_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError):
        raise SignatureError("missing or malformed webhook headers") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance window")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("no matching signature")
    return message_id
