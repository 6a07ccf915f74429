"""Secrets at rest: webhook signing secrets, Slack webhook URLs and SMTP URLs (with their
passwords) are stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under a key derived from the settings' ``secret_key``
(``MQL_SECRET_KEY``).

A stored secret reads ``fernet:<token>``. Without a key nothing new is stored: a serious
deployment must not write credentials in plaintext by accident, and a key file generated
beside the database would travel with every copy of it (a backup of the folder would
hold both). Values written before encryption existed (no prefix) are still read, and
migration 0010 encrypts them.

The same secret also keys the hashes kept of erased identifiers (:meth:`SecretBox.digest`):
a keyed hash cannot be reversed by hashing a list of candidate e-mail addresses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from mqlengine.errors import ConfigError

PREFIX = "fernet:"
NO_KEY = (
    "MQL_SECRET_KEY is not set: webhook secrets, Slack webhook URLs and SMTP passwords are "
    "stored encrypted with it (any long random string, e.g. "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
)


def _derive(secret_key: str, purpose: bytes) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), b"mqlengine/" + purpose, hashlib.sha256).digest()


class SecretBox:
    """Seals and opens stored secrets; ``secret_key`` None: a box that refuses to seal."""

    def __init__(self, secret_key: str | None) -> None:
        self.configured = bool(secret_key)
        self._fernet: Fernet | None = None
        self._hash_key: bytes | None = None
        if secret_key:
            key = base64.urlsafe_b64encode(_derive(secret_key, b"secrets-at-rest"))
            self._fernet = Fernet(key)
            self._hash_key = _derive(secret_key, b"identifier-digest")

    @staticmethod
    def is_sealed(value: str | None) -> bool:
        return value is not None and value.startswith(PREFIX)

    def seal(self, value: str | None) -> str | None:
        """The stored form of a secret (None stays None)."""
        if value is None or self.is_sealed(value):
            return value
        if self._fernet is None:
            raise ConfigError(NO_KEY)
        return PREFIX + self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def reveal(self, value: str | None) -> str | None:
        """The secret behind a stored value (a plaintext one from before is returned as is)."""
        if value is None or not self.is_sealed(value):
            return value
        if self._fernet is None:
            raise ConfigError(NO_KEY + "; it is needed to read the stored secrets")
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ConfigError(
                "a stored secret does not open with MQL_SECRET_KEY (was the key changed?)"
            ) from None

    def digest(self, kind: str, value: str) -> str:
        """A keyed hash of an identifier (HMAC-SHA256, hex), for the suppression list."""
        if self._hash_key is None:
            raise ConfigError(NO_KEY + "; suppressing erased identifiers needs it too")
        message = f"{kind}:{value}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()


def mask_url(url: str | None) -> str:
    """A URL for display: scheme and host only (no credentials, no path tokens)."""
    if not url:
        return ""
    if SecretBox.is_sealed(url):
        return "(encrypted)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return (
        f"{parts.scheme}://{host}{port}/…"
        if parts.path not in ("", "/")
        else (f"{parts.scheme}://{host}{port}")
    )
