"""Consent values, what a message's consent signals do to it, and the definition's section."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mqlengine.definition.compiler import parse_definition
from mqlengine.domain.consent import (
    ConsentPolicy,
    ConsentValueError,
    is_consent_field,
    marketing_withdrawn,
    parse_consent,
)
from mqlengine.domain.scoring import Event, score
from mqlengine.errors import DefinitionError
from mqlengine.ingest.consent import apply_consent
from mqlengine.ingest.messages import MessageError, parse_message
from support.paths import EXAMPLE

NOW = datetime(2026, 11, 16, 15, 0, tzinfo=UTC)
POLICY = ConsentPolicy(honor_global_privacy_control=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("yes", True),
        ("No", False),
        ("TRUE", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("y", True),
        (" N ", False),
        (True, True),
        (0, False),
    ],
)
def test_consent_values_are_booleans(value: object, expected: bool) -> None:
    assert parse_consent(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", "2", "opted out", 2, None, 0.5])
def test_anything_else_is_not_a_consent(value: object) -> None:
    with pytest.raises(ConsentValueError, match="not a consent value"):
        parse_consent(value)


def test_consent_fields_are_recognised_by_name() -> None:
    assert is_consent_field("consent_marketing") and is_consent_field("consent.tracking")
    assert is_consent_field("Consent") and not is_consent_field("email")


def message(**raw: object) -> object:
    return parse_message({"userId": "u", **raw}, received_at=NOW)


def test_a_message_without_consent_signals_is_left_as_it_is() -> None:
    original = message(type="track", event="X", properties={"note": "hi"})
    assert apply_consent(original, POLICY) is original  # type: ignore[arg-type]


def test_withdrawn_tracking_strips_ip_user_agent_and_free_text() -> None:
    original = message(
        type="page",
        properties={"path": "/pricing", "title": "Pricing", "plan": "pro", "seats": 4},
        context={
            "ip": "192.0.2.1",
            "userAgent": "Mozilla",
            "page": {"url": "https://x.io/?email=a@b.io", "path": "/pricing"},
            "campaign": {"source": "ads"},
            "consent": {"categoryPreferences": {"Analytics": False, "Advertising": True}},
        },
    )
    result = apply_consent(original, POLICY)  # type: ignore[arg-type]
    assert result.untracked and not result.scored
    assert result.properties == {"path": "/pricing", "seats": 4}
    assert "ip" not in result.context and "userAgent" not in result.context
    assert result.context["page"] == {"path": "/pricing"}
    assert result.context["campaign"] == {"source": "ads"}
    # what the consent manager said is recorded on the person
    assert result.traits["consent"] == {"tracking": False, "marketing": True}


def test_a_consent_trait_or_the_gpc_header_withdraws_tracking() -> None:
    by_trait = message(type="track", event="X", context={"traits": {"consent": {"tracking": "no"}}})
    assert apply_consent(by_trait, POLICY).untracked  # type: ignore[arg-type]
    by_header = message(
        type="track", event="X", context={"privacy": {"globalPrivacyControl": True}}
    )
    assert apply_consent(by_header, POLICY).untracked  # type: ignore[arg-type]
    by_dnt = message(type="track", event="X", context={"privacy": {"doNotTrack": True}})
    assert not apply_consent(by_dnt, POLICY).untracked  # type: ignore[arg-type]
    honoured = ConsentPolicy(honor_do_not_track=True)
    assert apply_consent(by_dnt, honoured).untracked  # type: ignore[arg-type]


def test_an_unreadable_consent_trait_rejects_the_message() -> None:
    bad = message(type="identify", traits={"consent": {"marketing": "perhaps"}})
    with pytest.raises(MessageError) as caught:
        apply_consent(bad, POLICY)  # type: ignore[arg-type]
    assert caught.value.field == "traits.consent.marketing"
    good = message(type="identify", traits={"consent": {"marketing": "No"}})
    assert apply_consent(good, POLICY).traits["consent"]["marketing"] is False  # type: ignore[attr-defined]


def test_withdrawn_tracking_on_the_person_earns_no_intent() -> None:
    definition = parse_definition(EXAMPLE.read_text()).definition
    demo = [Event("e1", "Demo Requested", NOW, {})]
    profile = {"email": "a@acme.io", "seniority": "vp"}
    assert score(definition, profile, demo, NOW).intent > 0
    untracked = {**profile, "consent_tracking": False}
    card = score(definition, untracked, demo, NOW)
    assert card.intent == 0 and card.mql_type is None
    assert marketing_withdrawn({"consent_marketing": False}, definition.consent)
    assert not marketing_withdrawn({"consent_marketing": True}, definition.consent)


def test_the_definition_section_is_validated() -> None:
    text = EXAMPLE.read_text().replace("honor_do_not_track: false", "honor_do_not_track: sometimes")
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text)
    assert any("honor_do_not_track" in d for d in caught.value.diagnostics)
    loaded = parse_definition(EXAMPLE.read_text()).definition.consent
    assert loaded.marketing_trait == "consent_marketing"
    assert loaded.honor_global_privacy_control and not loaded.honor_do_not_track
