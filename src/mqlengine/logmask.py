"""Personal data and keys stay out of logs.

A :class:`MaskFilter` rewrites every log record — message, arguments, traceback and
stack — before a handler writes it: e-mail addresses, phone numbers in international
form, the values of identifying query parameters (``email=``, ``userId=``, ``phone=`` …),
keys and secrets (``key=``, ``writeKey=``, ``Authorization`` headers, ``whsec_…``
secrets, passwords in URLs, and the configured keys themselves) become ``***``.
``mql serve`` runs uvicorn with it on every handler (access log included), and every
CLI command installs it on the root logger. The database engine also hides statement
parameters from its errors (``hide_parameters``), so a failed INSERT no longer prints
the rows it carried.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

MASK = "***"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(r"(?:\+|%2B)\d[\d ().-]{5,}\d")
_QUERY = re.compile(
    r"(?i)\b(key|writekey|write_key|api_key|apikey|token|secret|password|email|userid|"
    r"user_id|anonymousid|anonymous_id|phone|externalid|external_id)=[^&\s\"']*"
)
_JSON_FIELD = re.compile(
    r"(?i)([\"'](?:email|phone|userId|user_id|anonymousId|anonymous_id|writeKey|secret|"
    r"password|ip)[\"']\s*:\s*)[\"'][^\"']*[\"']"
)
_AUTH = re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]{4,}")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with personal data and keys replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _WEBHOOK_SECRET.sub(MASK, text)
    text = _AUTH.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _QUERY.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _JSON_FIELD.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    text = _EMAIL.sub(MASK, text)
    return _PHONE.sub(MASK, text)


class MaskFilter(logging.Filter):
    """Masks each record in place (message with its arguments, traceback, stack)."""

    def __init__(self, name: str = "", secrets: Iterable[str] = ()) -> None:
        super().__init__(name)
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        record.msg = mask(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = mask(record.stack_info, self.secrets)
        return True


def install(secrets: Iterable[str] = ()) -> MaskFilter:
    """Mask every record the process logs: a filter on each root handler (one writing
    warnings to stderr is added when there is none) and on uvicorn's loggers."""
    found = MaskFilter(secrets=secrets)
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        stderr.setLevel(logging.WARNING)
        root.addHandler(stderr)
    for handler in root.handlers:
        if not any(isinstance(f, MaskFilter) for f in handler.filters):
            handler.addFilter(found)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskFilter) for f in logger.filters):
            logger.addFilter(found)
    return found


def uvicorn_log_config(base: dict[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """uvicorn's logging configuration (``base``: ``uvicorn.config.LOGGING_CONFIG``) with
    the mask on every handler, and the root logger (the engine's own loggers) written
    through the same handler."""
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["mask"] = {
        "()": "mqlengine.logmask.MaskFilter",
        "secrets": list(secrets),
    }
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("mask")
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config
