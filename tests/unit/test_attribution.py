"""First-touch attribution: UTM parameters, a lead_source trait, the referrer."""

from __future__ import annotations

from typing import Any

import pytest

from mqlengine.domain.attribution import Attribution, channel_of, named_channel


@pytest.mark.parametrize(
    ("context", "traits", "expected"),
    [
        ({}, {}, Attribution("direct")),
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
        ({}, {"lead_source": "  "}, Attribution("direct")),
        ({}, {"lead_source": 5}, Attribution("direct")),
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
