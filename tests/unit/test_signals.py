"""Bot user agents, phone normalisation and form-abuse flags."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqlengine.ingest.signals import FORM_FLAGS, check_form, is_bot_user_agent, normalize_phone

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
