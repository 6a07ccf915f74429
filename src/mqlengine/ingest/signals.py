"""Spam and quality checks on behavioural signals: bot traffic, phone numbers, form abuse.

These feed the validate step's *flags*: a page view from a crawler or a form filled in
1.2 seconds should not earn intent points, but the decision of what a flag costs belongs to
the MQL definition, so every function here only observes and reports. Pure: no clock reads
(fill times come from the form's own measurement), no network.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence

import phonenumbers

FORM_FLAGS = frozenset({"honeypot", "too_fast"})
DEFAULT_HONEYPOT_FIELDS = ("website_url_confirm", "hp", "honeypot")

# Crawler lists name crawlers that announce themselves; automation tools and HTTP client
# libraries often do not, and never belong to a person in a browser.
_AUTOMATION_WORDS = (
    "headless", "phantomjs", "selenium", "webdriver", "puppeteer", "playwright", "slimerjs",
    "python-requests", "python-urllib", "python-httpx", "aiohttp", "httpx/", "curl/", "wget/",
    "libwww", "go-http-client", "okhttp", "java/", "node-fetch", "undici", "axios/", "got (",
    "scrapy", "httpclient", "crawl", "spider", "scraper", "lighthouse", "pingdom",
    "uptimerobot", "statuscake",
)  # fmt: skip
_BOT_WORD = r"\bbot\b"
_AUTOMATION = re.compile("|".join([*map(re.escape, _AUTOMATION_WORDS), _BOT_WORD]), re.IGNORECASE)
_BOT_WORD_LOWER = re.compile(_BOT_WORD)
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
    return _automation(text) or _known_crawler(text)


def _automation(text: str) -> bool:
    if text.isascii():
        # For ASCII text, ignoring case is lower-casing both sides: substring tests on the
        # lower-cased text instead of one case-insensitive regex (several times faster).
        lower = text.lower()
        return any(word in lower for word in _AUTOMATION_WORDS) or bool(
            _BOT_WORD_LOWER.search(lower)
        )
    return bool(_AUTOMATION.search(text))  # Unicode case folding has special cases


def _known_crawler(ua: str) -> bool:
    return _crawler_index().matches(ua)


class CrawlerIndex:
    """Regex patterns searched only where they can match (the same verdict as trying all).

    Most crawler patterns contain a literal that every match includes (``Googlebot\\/``
    contains ``Googlebot/``); each such pattern is filed under the first characters of that
    literal, and a user agent only has the patterns filed under its own substrings tried.
    Patterns without a usable literal are always tried. Case-sensitive, as the patterns are.
    """

    KEY = 3  # characters of a literal a pattern is filed under

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self.literals: list[tuple[str, ...]] = []
        self.filed: dict[str, list[int]] = {}
        unfiled: list[str] = []
        for number, pattern in enumerate(self.patterns):
            literals = required_literals(pattern)
            self.literals.append(literals or ())
            if literals is None:
                unfiled.append(pattern)
                continue
            for literal in literals:
                self.filed.setdefault(literal[: self.KEY], []).append(number)
        self.sizes = sorted({len(key) for key in self.filed})
        self.keys = frozenset(self.filed)
        self.always = re.compile("|".join(unfiled)) if unfiled else None
        self._compiled: dict[int, re.Pattern[str]] = {}

    def matches(self, text: str) -> bool:
        if self.always is not None and self.always.search(text):
            return True
        candidates: set[int] = set()
        for size in self.sizes:
            grams = {text[i : i + size] for i in range(len(text) - size + 1)}
            for key in grams.intersection(self.keys):
                candidates.update(self.filed[key])
        return any(
            any(literal in text for literal in self.literals[number])
            and self._pattern(number).search(text)
            for number in candidates
        )

    def _pattern(self, number: int) -> re.Pattern[str]:
        compiled = self._compiled.get(number)
        if compiled is None:
            compiled = self._compiled[number] = re.compile(self.patterns[number])
        return compiled


@functools.cache
def _crawler_index() -> CrawlerIndex:
    # Imported on first use: the package parses a 0.5 MB JSON file at import time.
    import crawleruseragents

    return CrawlerIndex([entry["pattern"] for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA])


_CLASS_ESCAPES = frozenset("dDsSwWbBAZ")  # escapes that match a class or a position


def required_literals(pattern: str) -> tuple[str, ...] | None:
    """Strings such that every match of ``pattern`` contains at least one of them (one per
    top-level alternative), or None when the pattern is not read here: only plain regex
    syntax is (literals, escapes, classes, groups, ``? * +`` quantifiers, anchors).

    Conservative by construction: anything not understood makes the answer None, and a
    None costs only speed, never a verdict.
    """
    if "(?" in pattern.replace("(?:", "") or "{" in pattern:
        return None  # inline flags, lookarounds, counted repeats: not read here
    branches = _top_level_branches(pattern)
    if branches is None:
        return None
    found: list[str] = []
    for branch in branches:
        literal = _longest_literal(branch)
        if not literal:
            return None
        found.append(literal)
    return tuple(found)


def _skip_class(pattern: str, start: int) -> int | None:
    """Index just after the character class that opens at ``start`` (a ``[``)."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading "]" is a member, not the end
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif pattern[i] == "[":
            return None  # nested-set syntax: not read here
        elif pattern[i] == "]":
            return i + 1
        else:
            i += 1
    return None


def _skip_group(pattern: str, start: int) -> int | None:
    """Index just after the group that opens at ``start`` (a ``(``)."""
    depth = 0
    i = start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            end = _skip_class(pattern, i)
            if end is None:
                return None
            i = end
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _top_level_branches(pattern: str) -> list[str] | None:
    branches: list[str] = []
    start = i = 0
    while i < len(pattern):
        char = pattern[i]
        end: int | None
        if char == "\\":
            i += 2
        elif char == "[":
            end = _skip_class(pattern, i)
            if end is None:
                return None
            i = end
        elif char == "(":
            end = _skip_group(pattern, i)
            if end is None:
                return None
            i = end
        elif char == ")":
            return None
        elif char == "|":
            branches.append(pattern[start:i])
            start = i = i + 1
        else:
            i += 1
    branches.append(pattern[start:])
    return branches


def _longest_literal(branch: str) -> str | None:
    """The longest run of characters every match of ``branch`` (no top-level ``|``) has."""
    runs: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(branch):
        char = branch[i]
        atom: str | None  # the character matched, or None for a class, group or anchor
        if char == "\\":
            if i + 1 >= len(branch):
                return None
            escaped = branch[i + 1]
            if escaped in _CLASS_ESCAPES:
                atom = None
            elif not escaped.isascii() or escaped.isalnum():
                return None  # \1, \x41, \n …: not read here
            else:
                atom = escaped
            i += 2
        elif char == "[":
            end = _skip_class(branch, i)
            if end is None:
                return None
            atom, i = None, end
        elif char == "(":
            end = _skip_group(branch, i)
            if end is None:
                return None
            atom, i = None, end
        elif char in ".^$":
            atom, i = None, i + 1
        elif char in "?*+)|":
            return None  # a quantifier without an atom, or unbalanced: not read here
        else:
            atom, i = char, i + 1
        quantifier = branch[i] if i < len(branch) and branch[i] in "?*+" else ""
        if quantifier:
            i += 1
            if i < len(branch) and branch[i] in "?+":
                i += 1  # lazy or possessive
        if atom is not None and quantifier in ("", "+"):
            current.append(atom)
        if atom is None or quantifier:
            # a class, group or anchor, an optional atom, or a repeated one: the run ends
            # (after a repeated atom, which every match has at least once)
            runs.append("".join(current))
            current = []
    runs.append("".join(current))
    return max(runs, key=len) or None


@functools.lru_cache(maxsize=16384)  # parsing costs ~20 µs; a person's number repeats
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
