"""Consent: what a person (or one of their messages) allows, read from traits and Segment's
consent object, as the definition's ``consent:`` section configures it.

Two kinds matter here. **Tracking** consent covers behavioural data: a message sent with
it withdrawn keeps no IP address, user agent or free-text properties, and its event never
earns intent points. **Marketing** consent covers contacting the person: with it
withdrawn the person may still be scored, but is neither routed to sales nor notified about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

YES = frozenset({"yes", "y", "true", "1"})
NO = frozenset({"no", "n", "false", "0"})
CONSENT_WORDS = "yes/no, true/false, 1/0 or y/n"


class ConsentValueError(ValueError):
    """A consent value that is not one of the boolean spellings."""


def parse_consent(value: Any) -> bool:
    """A consent value as a boolean: ``yes/no``, ``true/false``, ``1/0``, ``y/n`` (any
    case), booleans and the integers 1 and 0. Anything else raises — an unreadable
    consent must never count as given."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in YES:
            return True
        if word in NO:
            return False
    raise ConsentValueError(f"{value!r} is not a consent value (use {CONSENT_WORDS})")


def is_consent_field(name: str) -> bool:
    """Whether an import column's target holds a consent value (``consent_marketing``,
    ``consent.tracking``, ``consent``…): read as a boolean, never as free text."""
    return any(part.strip().lower().startswith("consent") for part in name.split("."))


def trait_at(traits: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted trait path (``consent.tracking``), or None."""
    found = traits.get(dotted)
    if found is not None or "." not in dotted:
        return found
    value: Any = traits
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def with_trait(traits: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``traits`` with ``value`` at the dotted path (nested objects copied)."""
    result = dict(traits)
    parts = dotted.split(".")
    target = result
    for part in parts[:-1]:
        inner = target.get(part)
        target[part] = dict(inner) if isinstance(inner, Mapping) else {}
        target = target[part]
    target[parts[-1]] = value
    return result


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    """The definition's ``consent:`` section."""

    tracking_trait: str = "consent.tracking"
    marketing_trait: str = "consent.marketing"
    # keys of Segment's context.consent.categoryPreferences (compared ignoring case)
    tracking_categories: tuple[str, ...] = ("analytics",)
    marketing_categories: tuple[str, ...] = ("marketing", "advertising")
    honor_do_not_track: bool = False  # the request header DNT: 1
    honor_global_privacy_control: bool = False  # the request header Sec-GPC: 1
    keep_properties: tuple[str, ...] = ("path",)  # string properties kept without tracking


@dataclass(frozen=True, slots=True)
class MessageConsent:
    """What one message says: None where it says nothing; ``tracking_reason`` names
    the signal that withdrew tracking consent."""

    tracking: bool | None = None
    marketing: bool | None = None
    tracking_reason: str | None = None


def _categories(
    preferences: Mapping[str, Any], wanted: tuple[str, ...]
) -> tuple[bool | None, str | None]:
    names = {w.lower() for w in wanted}
    verdict: bool | None = None
    for key, value in preferences.items():
        if not isinstance(key, str) or key.lower() not in names:
            continue
        try:
            allowed = parse_consent(value)
        except ConsentValueError:
            continue  # a consent manager's odd value: not a consent given
        if not allowed:
            return False, key
        verdict = True
    return verdict, None


def message_consent(
    traits: Mapping[str, Any], context: Mapping[str, Any], policy: ConsentPolicy
) -> MessageConsent:
    """What a message says about consent: its consent traits (already parsed as
    booleans), Segment's ``context.consent.categoryPreferences`` and the request's
    privacy headers (``context.privacy``, set by the HTTP API) when the policy honours
    them. Withdrawn anywhere wins."""
    tracking: bool | None = None
    marketing: bool | None = None
    reason: str | None = None
    value = trait_at(traits, policy.tracking_trait)
    if isinstance(value, bool):
        tracking = value
        if not value:
            reason = f"trait {policy.tracking_trait} = false"
    value = trait_at(traits, policy.marketing_trait)
    if isinstance(value, bool):
        marketing = value
    consent = context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, Mapping) else None
    if isinstance(preferences, Mapping):
        said, key = _categories(preferences, policy.tracking_categories)
        if said is False:
            tracking, reason = False, f"context.consent category {key} = false"
        elif said and tracking is None:
            tracking = True
        said, _key = _categories(preferences, policy.marketing_categories)
        if said is False or (said and marketing is None):
            marketing = said
    privacy = context.get("privacy")
    if isinstance(privacy, Mapping):
        if policy.honor_do_not_track and privacy.get("doNotTrack") is True:
            tracking, reason = False, "request header DNT: 1"
        if policy.honor_global_privacy_control and privacy.get("globalPrivacyControl") is True:
            tracking, reason = False, "request header Sec-GPC: 1"
    return MessageConsent(tracking, marketing, reason)


def person_consent(profile: Mapping[str, Any], policy: ConsentPolicy) -> MessageConsent:
    """A person's standing consent, from the consent traits of their profile."""
    tracking = trait_at(profile, policy.tracking_trait)
    marketing = trait_at(profile, policy.marketing_trait)
    return MessageConsent(
        tracking if isinstance(tracking, bool) else None,
        marketing if isinstance(marketing, bool) else None,
    )


def marketing_withdrawn(profile: Mapping[str, Any] | None, policy: ConsentPolicy) -> bool:
    """True when the person said no to marketing: no routing, no notifications."""
    if not profile:
        return False
    return person_consent(profile, policy).marketing is False


def untracked_properties(properties: Mapping[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """The properties an event keeps without tracking consent: numbers and booleans,
    and the strings the policy names (e.g. ``path``); free text, objects and lists go."""
    kept: dict[str, Any] = {}
    for key, value in properties.items():
        if isinstance(value, bool | int | float) or value is None:
            kept[key] = value
        elif isinstance(value, str) and key in keep:
            kept[key] = value
    return kept


# context keys that identify a device or a person's whereabouts
UNTRACKED_CONTEXT = ("ip", "userAgent", "userAgentData", "location", "device", "network")


def untracked_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context without the IP address, user agent, device and location."""
    kept = {k: v for k, v in context.items() if k not in UNTRACKED_CONTEXT}
    page = kept.get("page")
    if isinstance(page, Mapping):
        kept["page"] = {k: v for k, v in page.items() if k == "path"}
    return kept
