"""Consent at ingest: what a message's consent signals do to it before it is stored.

Runs in the parse stage, after the definition's checks: consent traits are read as
booleans (anything else rejects the message, naming the trait), consent given in
Segment's ``context.consent`` is recorded as the person's consent traits, and a message
sent without tracking consent is stored stripped (no IP, user agent or free-text
properties) and marked so that its event never earns intent points.
"""

from __future__ import annotations

import dataclasses

from mqlengine.domain.consent import (
    ConsentPolicy,
    ConsentValueError,
    message_consent,
    parse_consent,
    trait_at,
    untracked_context,
    untracked_properties,
    with_trait,
)
from mqlengine.ingest.messages import Message, MessageError


def trait_heads(policy: ConsentPolicy) -> frozenset[str]:
    """The top-level trait names the consent traits live under."""
    return frozenset(
        name.split(".", 1)[0] for name in (policy.tracking_trait, policy.marketing_trait)
    )


def apply_consent(
    message: Message, policy: ConsentPolicy, heads: frozenset[str] | None = None
) -> Message:
    """The message as consent leaves it; :class:`MessageError` for an unreadable
    consent trait. ``heads``: :func:`trait_heads` of the policy, when the caller holds it."""
    traits = message.traits
    context = message.context
    if (
        "consent" not in context
        and "privacy" not in context
        and (message.type == "group" or (heads or trait_heads(policy)).isdisjoint(traits))
    ):
        return message  # nothing said about consent (the common case): one quick look
    if message.type == "group":  # a group's traits are the account's
        person_traits: dict[str, object] = {}
    else:
        person_traits = traits
        for name in (policy.tracking_trait, policy.marketing_trait):
            value = trait_at(traits, name)
            if value is None or isinstance(value, bool):
                continue
            try:
                person_traits = with_trait(person_traits, name, parse_consent(value))
            except ConsentValueError as error:
                raise MessageError(f"traits.{name}", str(error)) from None
    if (
        "consent" not in context
        and "privacy" not in context
        and person_traits is traits
        and trait_at(traits, policy.tracking_trait) is not False
    ):
        return message  # nothing said about consent (the common case)
    consent = context.get("consent")
    if message.type != "group" and isinstance(consent, dict):
        # consent given in a consent manager is the person's standing consent
        stated = message_consent({}, {"consent": consent}, policy)
        for name, value in (
            (policy.tracking_trait, stated.tracking),
            (policy.marketing_trait, stated.marketing),
        ):
            if value is not None and trait_at(person_traits, name) is None:
                person_traits = with_trait(person_traits, name, value)
    said = message_consent(person_traits, context, policy)
    changes: dict[str, object] = {}
    if person_traits is not traits:
        changes["traits"] = person_traits
    if said.tracking is False:
        changes["untracked"] = True
        changes["context"] = untracked_context(context)
        changes["properties"] = untracked_properties(message.properties, policy.keep_properties)
    return dataclasses.replace(message, **changes) if changes else message  # type: ignore[arg-type]
