"""First-touch attribution: UTM parameters, a lead_source trait, the referrer."""

from __future__ import annotations

from typing import Any

import pytest

from mqlengine.domain.attribution import (
    NO_CHANNEL,
    Attribution,
    blank_channel,
    channel_label,
    channel_of,
    named_channel,
)


@pytest.mark.parametrize(
    ("context", "traits", "expected"),
    [
        # nothing says where the lead came from: no channel (not "direct", not "unknown")
        ({}, {}, Attribution(None)),
        ({"page": {"path": "/"}}, {}, Attribution("direct")),
        ({"page": {"referrer": ""}}, None, Attribution("direct")),
        ({"page": {"referrer": "https://news.ycombinator.com"}}, None, Attribution("referral")),
        (
            {"campaign": {"source": "Google", "medium": "cpc", "name": "brand"}},
            {},
            Attribution("paid_search", "google", "brand"),
        ),
        (
            {"campaign": {"source": "linkedin", "medium": "paid"}},
            {},
            Attribution("paid_social", "linkedin", None),
        ),
        ({"campaign": {"medium": "newsletter"}}, {}, Attribution("email")),
        ({"campaign": {"medium": "affiliate"}}, {}, Attribution("partner")),
        ({"campaign": {"medium": "referral"}}, {}, Attribution("referral")),
        ({"campaign": {"medium": "webinar"}}, {}, Attribution("events")),
        ({"campaign": {"medium": "organic"}}, {}, Attribution("organic_search")),
        # an unknown medium falls back to the referrer
        (
            {"campaign": {"medium": "print"}, "page": {"referrer": "x"}},
            {},
            Attribution("referral"),
        ),
        # sales said where the lead came from: that wins over UTM parameters
        (
            {"campaign": {"source": "google", "medium": "cpc"}},
            {"lead_source": " Trade Show "},
            Attribution("trade show", "google", None),
        ),
        ({}, {"channel": "Partner"}, Attribution("partner")),
        ({}, {"lead_source": "  "}, Attribution(None)),
        ({}, {"lead_source": 5}, Attribution(None)),
        ({"campaign": {"medium": "print"}}, {}, Attribution(None)),
    ],
)
def test_channel_of(
    context: dict[str, Any], traits: dict[str, Any] | None, expected: Attribution
) -> None:
    assert channel_of(context, traits) == expected


def test_named_channel_normalises_or_says_none() -> None:
    assert named_channel(" Webinar ") == "webinar"
    assert named_channel("") is None
    assert named_channel(None) is None
    assert named_channel(3) is None


def test_blank_channel_is_its_own_label() -> None:
    assert channel_label(None) == channel_label("  ") == NO_CHANNEL == "(none)"
    assert channel_label("unknown") == "unknown"
    assert blank_channel(" Paid_Search ") == "paid_search"
    assert blank_channel("") is None and blank_channel(None) is None
