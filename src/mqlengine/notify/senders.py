"""Delivery of one outbox row: signed webhook, Slack incoming webhook, or SMTP e-mail.

Stdlib HTTP (urllib) keeps the worker free of optional dependencies. A sender returns the
HTTP status (or None for e-mail) and raises :class:`DeliveryError` on any failure.
"""

from __future__ import annotations

import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from mqlengine.errors import ConfigError, UnavailableError
from mqlengine.notify import format, signing
from mqlengine.store.secretbox import SecretBox
from mqlengine.version import __version__

USER_AGENT = f"mqlengine-webhooks/{__version__}"


class DeliveryError(UnavailableError):
    """A destination did not take a notification (retried later; ``status``: its answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message, details={"status": status})
        self.status = status


@dataclass(frozen=True)
class SendOptions:
    base_url: str = "http://localhost:8000"
    timeout: float = 10.0
    box: SecretBox = field(default_factory=lambda: SecretBox(None))  # opens stored secrets


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    for key, value in {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **headers,
    }.items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            return int(response.status)
    except urllib.error.HTTPError as error:
        raise DeliveryError(f"HTTP {error.code} from receiver", error.code) from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"could not deliver: {reason}") from None


def send_webhook(row: dict[str, Any], options: SendOptions) -> int:
    body = orjson.dumps(row["payload"])
    headers = signing.headers(row["secret"], row["message_id"], int(time.time()), body)
    return _post(row["url"], body, headers, options.timeout)


def send_slack(row: dict[str, Any], options: SendOptions) -> int:
    body = orjson.dumps(format.slack_message(row["payload"], options.base_url))
    return _post(row["url"], body, {}, options.timeout)


def send_email(row: dict[str, Any], options: SendOptions) -> None:
    """``smtp://user:pass@host:port?from=a@b&starttls=1`` (``smtps://`` for implicit TLS)."""
    parts = urlsplit(row["url"])
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    subject, text = format.email_text(row["payload"], options.base_url)
    message = EmailMessage()
    message["From"] = query.get("from", "mql-engine@localhost")
    message["To"] = ", ".join(row["payload"].get("to", []))
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))  # RFC 5322 requires it
    message["Message-ID"] = f"<{row['message_id']}@mqlengine>"
    message.set_content(text)
    host, port = parts.hostname or "localhost", parts.port
    try:
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port or 465, timeout=options.timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(host, port or 25, timeout=options.timeout)
        with client:
            if query.get("starttls") in ("1", "true"):
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            refused = client.send_message(message)
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"SMTP delivery failed: {error}") from None
    if refused:
        # Some recipients were refused: deliver again later (at least once; the
        # Message-ID stays the same, so the others can drop the duplicate).
        detail = ", ".join(f"{to}: {code} {reply!r}" for to, (code, reply) in refused.items())
        raise DeliveryError(f"SMTP server refused recipient(s): {detail}")


def send(row: dict[str, Any], options: SendOptions) -> int | None:
    try:
        url, secret = options.box.reveal(row["url"]), options.box.reveal(row.get("secret"))
    except ConfigError as error:
        raise DeliveryError(error.message) from None
    row = {**row, "url": url, "secret": secret}
    kind = row["kind"]
    if kind == "webhook":
        return send_webhook(row, options)
    if kind == "slack":
        return send_slack(row, options)
    if kind == "email":
        send_email(row, options)
        return None
    raise DeliveryError(f"unknown destination kind {kind!r}")
