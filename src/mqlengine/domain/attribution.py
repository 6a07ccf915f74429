"""First-touch attribution: which channel brought a person, from what a message says.

Pure: it reads the message's ``context`` (UTM parameters in ``context.campaign``, the
referrer in ``context.page``) and its traits (an explicit ``lead_source``), nothing else.
A person keeps the attribution of the message that created it; a later ``lead_source``
trait overrides the channel (sales said where the lead came from). Names are cut to the
length the person's columns keep (channel 64 characters, source and campaign 255); a
campaign name that is not text (or a number) is no campaign.

A lead with no channel: when a message names no campaign, no ``lead_source`` and carries no
page context (a server-side identify, a CSV row with a blank channel, a CRM history row),
nothing says where the lead came from, so the channel stays empty (``None``) on every path —
ingest, imports and history alike. It is *not* ``direct`` (a visit without referrer) and not
``unknown`` (a value someone wrote): reports show it as its own row, :data:`NO_CHANNEL`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PAID_MEDIUMS = frozenset({"cpc", "ppc", "paid", "paidsearch", "paid_search", "display", "cpm"})
SOCIAL_SOURCES = frozenset(
    {"linkedin", "facebook", "twitter", "x", "instagram", "reddit", "tiktok"}
)
_MEDIUM_CHANNELS = {
    "email": "email",
    "newsletter": "email",
    "social": "organic_social",
    "organic_social": "organic_social",
    "referral": "referral",
    "partner": "partner",
    "affiliate": "partner",
    "event": "events",
    "events": "events",
    "webinar": "events",
    "organic": "organic_search",
}


CHANNEL_LENGTH = 64
NAME_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Attribution:
    channel: str | None
    source: str | None = None
    campaign: Any = None


def _campaign_name(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)[:NAME_LENGTH] or None


DIRECT = Attribution("direct")
REFERRAL = Attribution("referral")
UNATTRIBUTED = Attribution(None)

# How reports show a lead with no channel (source, campaign): its own row, distinct from a
# channel literally called "unknown".
NO_CHANNEL = "(none)"


def channel_label(value: Any) -> str:
    """The report label of a stored channel, source or campaign: blank → :data:`NO_CHANNEL`."""
    if value is None:
        return NO_CHANNEL
    text = str(value).strip()
    return text if text else NO_CHANNEL


def blank_channel(value: Any) -> str | None:
    """The stored form of a channel a file or a person gives: lower case, blank → None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def named_channel(lead_source: Any) -> str | None:
    """The channel a ``lead_source`` trait names, normalised (None when it names none)."""
    if isinstance(lead_source, str) and lead_source.strip():
        return lead_source.strip().lower()[:CHANNEL_LENGTH]
    return None


def _referred(context: Mapping[str, Any]) -> bool:
    page = context.get("page")
    return bool(page.get("referrer")) if isinstance(page, Mapping) else False


def _visited(context: Mapping[str, Any]) -> bool:
    """The message comes from a page visit (analytics.js sets ``context.page``)."""
    return isinstance(context.get("page"), Mapping)


def _fallback(context: Mapping[str, Any]) -> Attribution:
    if _referred(context):
        return REFERRAL
    return DIRECT if _visited(context) else UNATTRIBUTED


def channel_of(context: Mapping[str, Any], traits: Mapping[str, Any] | None) -> Attribution:
    """Attribution from UTM parameters (``context.campaign``), a ``lead_source`` trait, or
    the referrer, in that order of precedence for the channel; a visit with neither is
    ``direct``, and a message that says nothing at all has no channel (``None``)."""
    campaign = context.get("campaign")
    named = named_channel(traits.get("lead_source") or traits.get("channel")) if traits else None
    if campaign is None and named is None:  # the common case: only the referrer says
        return _fallback(context)
    source: str | None = None
    name: Any = None
    channel: str | None = None
    if isinstance(campaign, Mapping):
        source = str(campaign.get("source") or "").lower()[:NAME_LENGTH] or None
        medium = str(campaign.get("medium") or "").lower()
        name = _campaign_name(campaign.get("name"))
        if medium in PAID_MEDIUMS:
            channel = "paid_social" if source in SOCIAL_SOURCES else "paid_search"
        else:
            channel = _MEDIUM_CHANNELS.get(medium)
    if named is not None:
        channel = named
    if channel is None:
        channel = _fallback(context).channel
    return Attribution(channel, source, name)
