"""Bot user agents, phone normalisation and form-abuse flags."""

from __future__ import annotations

import math
import random
import re

import crawleruseragents
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.ingest.signals import (
    _AUTOMATION,
    FORM_FLAGS,
    CrawlerIndex,
    _automation,
    check_form,
    is_bot_user_agent,
    normalize_phone,
    required_literals,
)

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    # a phone brand whose name ends in "bot"
    "Mozilla/5.0 (Linux; Android 13; CUBOT KingKong 9 Build/TP1A.220624.014) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
]

BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.0.0 Safari/537.36",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Wget/1.21.4",
    "Go-http-client/1.1",
    "axios/1.6.8",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Scrapy/2.11.1 (+https://scrapy.org)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
]


@pytest.mark.parametrize("ua", BROWSERS)
def test_browsers_are_people(ua: str) -> None:
    assert is_bot_user_agent(ua) is False


@pytest.mark.parametrize("ua", BOTS)
def test_bots_are_bots(ua: str) -> None:
    assert is_bot_user_agent(ua) is True


@pytest.mark.parametrize("ua", [None, "", "   "])
def test_missing_user_agent_is_not_evidence(ua: str | None) -> None:
    assert is_bot_user_agent(ua) is False


def test_very_long_user_agent_is_bounded() -> None:
    assert is_bot_user_agent("Mozilla/5.0 " + "x" * 100_000) is False
    assert is_bot_user_agent("curl/8.0 " + "x" * 100_000) is True


@given(st.text(max_size=300))
def test_user_agent_never_raises(ua: str) -> None:
    assert isinstance(is_bot_user_agent(ua), bool)


# --- the crawler list, searched through its literals --------------------------------------

CRAWLER_PATTERNS = [entry["pattern"] for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA]
CRAWLER_INSTANCES = [
    instance
    for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA
    for instance in entry.get("instances", [])
]


def variants(ua: str, rng: random.Random) -> list[str]:
    cut = rng.randrange(len(ua) + 1)
    return [ua, ua[:cut] + ua[cut + 1 :], ua[cut:] + " " + ua[:cut], ua.lower(), ua.upper()]


def test_crawler_index_agrees_with_searching_every_pattern() -> None:
    index = CrawlerIndex(CRAWLER_PATTERNS)
    rng = random.Random(5)
    agents = [v for ua in [*CRAWLER_INSTANCES, *BROWSERS, *BOTS] for v in variants(ua, rng)]
    found = [ua for ua in agents if index.matches(ua)]
    assert found == [ua for ua in agents if crawleruseragents.is_crawler(ua)]
    assert len(found) > len(CRAWLER_INSTANCES)  # the list's own examples, and more


def test_most_crawler_patterns_are_filed_under_a_literal() -> None:
    readable = [p for p in CRAWLER_PATTERNS if required_literals(p) is not None]
    assert len(readable) > 0.95 * len(CRAWLER_PATTERNS)
    for pattern in readable:  # the literal is in every example the pattern matches
        literals = required_literals(pattern)
        assert literals
        for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA:
            if entry["pattern"] == pattern:
                for instance in entry.get("instances", []):
                    if re.search(pattern, instance):
                        assert any(literal in instance for literal in literals)


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("Googlebot\\/", ("Googlebot/",)),
        ("Ahrefs(Bot|SiteAudit)", ("Ahrefs",)),
        ("AdsBot-Google([^-]|$)", ("AdsBot-Google",)),
        ("(sistrix|SISTRIX) [cC]rawler", ("rawler",)),
        ("Automaton|Newsify Feed Fetcher", ("Automaton", "Newsify Feed Fetcher")),
        ("^Seekbot", ("Seekbot",)),
        ("SSL Labs$", ("SSL Labs",)),
        ("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher", (" Feed-Fetcher",)),
        ("Spider[\\s\\S]*spider\\.com", ("spider.com",)),
        ("ab+cd", ("ab",)),
        ("abcx?yz", ("abc",)),
        ("abc*de", ("ab",)),
        ("abcd+?e", ("abcd",)),
        ("[]x]yz", ("yz",)),
        ("[^]x]yz", ("yz",)),
        ("a\\]bc", ("a]bc",)),
        ("(?:ab)cd", ("cd",)),
        ("a{2}bc", None),
        ("(?i)abc", None),
        ("(?=abc)d", None),
        ("ab\\1", None),  # a back reference: not read here
        ("\\x41bc", None),
        ("\\d+", None),
        ("abc|\\w+", None),
        ("ab(c", None),
        ("ab)c", None),
        ("*ab", None),
        ("", None),
    ],
)
def test_required_literals(pattern: str, literals: tuple[str, ...] | None) -> None:
    assert required_literals(pattern) == literals


PATTERN_PARTS = [
    "a",
    "b",
    "c",
    "ab",
    "\\.",
    ".",
    "[ab]",
    "[^a]",
    "(a|bc)",
    "(?:b)",
    "\\d",
    "^",
    "$",
]
QUANTIFIERS = ["", "", "", "?", "*", "+", "+?", "*?"]


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(st.sampled_from(PATTERN_PARTS), st.sampled_from(QUANTIFIERS)),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
    st.lists(st.text("abc.1 ", max_size=8), min_size=1, max_size=20),
)
def test_a_match_always_contains_a_required_literal(
    parts: list[tuple[str, str]], alternate: bool, texts: list[str]
) -> None:
    pattern = "".join(part + (q if part not in "^$" else "") for part, q in parts)
    if alternate:
        pattern = pattern + "|" + pattern[::-1].replace("\\", "")
    try:
        compiled = re.compile(pattern)
    except re.error:
        return
    literals = required_literals(pattern)
    index = CrawlerIndex([pattern])
    for text in texts:
        matched = bool(compiled.search(text))
        assert index.matches(text) is matched
        if matched and literals is not None:
            assert any(literal in text for literal in literals)


@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["Bot", "BOT", "robot", "curl/", "Got (", "Spider", "ſcrapy", "\u212a"]
            ),
            st.text(max_size=6),
        ),
        max_size=6,
    )
)
def test_automation_words_match_as_the_case_insensitive_pattern_does(parts: list[str]) -> None:
    text = " ".join(parts)
    assert _automation(text) is bool(_AUTOMATION.search(text))


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (650) 253-0000", None, "+16502530000"),
        ("650-253-0000", "US", "+16502530000"),
        ("650.253.0000", "us", "+16502530000"),
        ("030 901820", "DE", "+4930901820"),
        ("+49 30 901820", "FR", "+4930901820"),
        ("0049 30 901820", None, "+4930901820"),
        ("0049 30 901820", "DE", "+4930901820"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+44 20 7946 0018 ext. 12", None, "+442079460018"),
        ("030 901820", None, None),  # national number without a region
        ("12345", "US", None),
        ("+1 555 0100", None, None),
        ("not a phone", "US", None),
        ("", "US", None),
        (None, "US", None),
        ("+49 30 901820", "XX", "+4930901820"),
        ("030 901820", "XX", None),
    ],
)
def test_normalize_phone(raw: str | None, region: str | None, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


@given(st.text(max_size=300), st.sampled_from([None, "US", "DE", "GB", "zz", ""]))
def test_normalize_phone_never_raises(raw: str, region: str | None) -> None:
    result = normalize_phone(raw, region)
    assert result is None or (result.startswith("+") and result[1:].isdigit())


@given(
    st.sampled_from(["+1 (650) 253-0000", "030 901820", "0049 30 901820", "12345", "x"]),
    st.sampled_from([None, "US", "DE", "zz"]),
)
def test_normalize_phone_answers_the_same_from_its_cache(raw: str, region: str | None) -> None:
    fresh = normalize_phone.__wrapped__(raw, region)
    assert normalize_phone(raw, region) == fresh
    assert normalize_phone(raw, region) == fresh


def test_clean_form_has_no_flags() -> None:
    properties = {"email": "jane@acme.com", "form_fill_seconds": 14.2, "hp": ""}
    assert check_form(properties) == frozenset()


@pytest.mark.parametrize("field", ["website_url_confirm", "hp", "honeypot"])
def test_filled_honeypot(field: str) -> None:
    assert check_form({field: "http://spam.example"}) == {"honeypot"}


@pytest.mark.parametrize("value", [None, "", "   ", False, [], {}])
def test_empty_honeypot_values(value: object) -> None:
    assert check_form({"hp": value}) == frozenset()


@pytest.mark.parametrize("value", [True, 0, "0", ["x"], {"a": 1}])
def test_non_empty_honeypot_values(value: object) -> None:
    assert check_form({"hp": value}) == {"honeypot"}


def test_custom_honeypot_fields_replace_the_defaults() -> None:
    assert check_form({"fax_number": "123"}, honeypot_fields=["fax_number"]) == {"honeypot"}
    assert check_form({"hp": "x"}, honeypot_fields=["fax_number"]) == frozenset()


@pytest.mark.parametrize(
    ("properties", "flagged"),
    [
        ({"form_fill_seconds": 1.2}, True),
        ({"form_fill_seconds": "2.9"}, True),
        ({"form_fill_seconds": 3}, False),
        ({"form_fill_seconds": 45}, False),
        ({"form_fill_seconds": -1}, True),
        ({"time_to_submit_ms": 800}, True),
        ({"time_to_submit_ms": "2999"}, True),
        ({"time_to_submit_ms": 3000}, False),
        ({"time_to_submit_ms": 12_000}, False),
        ({"form_fill_seconds": 20, "time_to_submit_ms": 500}, True),
        ({"form_fill_seconds": "fast"}, False),
        ({"form_fill_seconds": True}, False),
        ({"form_fill_seconds": None}, False),
        ({"form_fill_seconds": math.nan}, False),
        ({"form_fill_seconds": math.inf}, False),
        ({}, False),
    ],
)
def test_too_fast(properties: dict[str, object], flagged: bool) -> None:
    assert ("too_fast" in check_form(properties)) is flagged


def test_min_fill_seconds_is_configurable() -> None:
    assert check_form({"form_fill_seconds": 5}, min_fill_seconds=10) == {"too_fast"}
    assert check_form({"form_fill_seconds": 5}, min_fill_seconds=0) == frozenset()


def test_both_flags() -> None:
    assert check_form({"honeypot": "x", "time_to_submit_ms": 10}) == {"honeypot", "too_fast"}


@given(st.dictionaries(st.text(max_size=20), st.none() | st.text() | st.floats() | st.integers()))
def test_check_form_never_raises(properties: dict[str, object]) -> None:
    assert check_form(properties) <= FORM_FLAGS
