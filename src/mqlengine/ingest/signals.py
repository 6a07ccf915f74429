"""Spam and quality checks on behavioural signals: bot traffic, phone numbers, form abuse.

These feed the validate step's *flags*: a page view from a crawler or a form filled in
1.2 seconds should not earn intent points, but the decision of what a flag costs belongs to
the MQL definition, so every function here only observes and reports. Pure: no clock reads
(fill times come from the form's own measurement), no network.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import phonenumbers

FORM_FLAGS = frozenset({"honeypot", "too_fast"})
DEFAULT_HONEYPOT_FIELDS = ("website_url_confirm", "hp", "honeypot")

# Crawler lists name crawlers that announce themselves; automation tools and HTTP client
# libraries often do not, and never belong to a person in a browser.
_AUTOMATION = re.compile(
    r"headless|phantomjs|selenium|webdriver|puppeteer|playwright|slimerjs"
    r"|python-requests|python-urllib|python-httpx|aiohttp|httpx/|curl/|wget/|libwww"
    r"|go-http-client|okhttp|java/|node-fetch|undici|axios/|got \(|scrapy|httpclient"
    r"|\bbot\b|crawl|spider|scraper|lighthouse|pingdom|uptimerobot|statuscake",
    re.IGNORECASE,
)
# Crawler patterns are meant for the start of a real user agent; longer input is noise,
# and bounding it bounds the regex work an attacker can cause.
_MAX_UA_LENGTH = 1024


def is_bot_user_agent(ua: str | None) -> bool:
    """Whether a user agent belongs to a crawler, monitor, script or headless browser.

    Uses the community-maintained ``crawler-user-agents`` patterns (as they are meant:
    case-sensitive) plus a short list of automation tools and HTTP libraries. A missing
    user agent is *not* a bot: server-side SDK calls legitimately carry none.
    """
    if ua is None or not ua.strip():
        return False
    text = ua[:_MAX_UA_LENGTH]
    return bool(_AUTOMATION.search(text)) or _known_crawler(text)


def _known_crawler(ua: str) -> bool:
    # Imported on first use: the package parses a 0.5 MB JSON file at import time.
    import crawleruseragents

    return bool(crawleruseragents.is_crawler(ua))


def normalize_phone(raw: str | None, default_region: str | None = None) -> str | None:
    """A phone number in E.164 (``+4930123456``), or None when it is not a valid number.

    ``default_region`` (ISO 3166 alpha-2, e.g. ``"DE"``) reads national numbers such as
    ``030 123456``; without it only international numbers parse, where a leading ``00``
    is taken as the international prefix most countries use.
    """
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    region = default_region.strip().upper() if default_region else None
    if region is None and text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_form(
    properties: Mapping[str, object],
    *,
    honeypot_fields: Sequence[str] = DEFAULT_HONEYPOT_FIELDS,
    min_fill_seconds: float = 3.0,
) -> frozenset[str]:
    """Flags for a form submission: ``honeypot`` and/or ``too_fast``.

    ``honeypot``: a field hidden from people (so only bots fill it) has a value.
    ``too_fast``: the form reported its fill time, as ``form_fill_seconds`` or
    ``time_to_submit_ms``, and it is below ``min_fill_seconds``. A missing or unreadable
    measurement is no evidence either way and raises no flag.
    """
    flags: set[str] = set()
    if any(_is_filled(properties.get(name)) for name in honeypot_fields):
        flags.add("honeypot")
    for name, per_second in (("form_fill_seconds", 1.0), ("time_to_submit_ms", 1000.0)):
        value = _as_number(properties.get(name))
        if value is not None and value / per_second < min_fill_seconds:
            flags.add("too_fast")
    return frozenset(flags)


def _is_filled(value: object) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Sequence | Mapping):
        return len(value) > 0
    return True


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(number) else number
