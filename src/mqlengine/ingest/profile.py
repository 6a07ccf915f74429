"""The person as scoring sees it: traits plus what the engine derived (marked as enriched).

Derived values never overwrite what the person or a connected system said: a ``seniority``
trait sent by the CRM wins over the one parsed from the title. ``profile["enriched"]``
records where each derived value came from, so explanations can tell the two apart.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mqlengine.ingest.titles import parse_title
from mqlengine.ingest.validation import cached_check_email

# Flags that mark a lead as spam for the definition's exclusions.
SPAM_SIGNALS = frozenset({"disposable", "honeypot", "too_fast", "invalid", "bot"})


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dicts merge key by key; other values from ``update`` replace."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def fill_missing(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Like :func:`deep_merge` but ``base`` wins: ``extra`` only fills gaps."""
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if current is None or current == "":
            merged[key] = value
        elif isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = fill_missing(current, value)
    return merged


def build_profile(
    traits: Mapping[str, Any],
    *,
    account_traits: Mapping[str, Any] | None = None,
    signal_flags: Sequence[str] = (),
    firmographics: Mapping[str, Any] | None = None,
    gmail_normalize: bool = False,
    ignore_flags: Collection[str] = (),
) -> dict[str, Any]:
    """Derive the scoring profile from raw traits. Pure; cheap enough to run per identify.

    ``ignore_flags``: flags the definition's ``validation:`` section set to ``ignore``.
    """
    profile: dict[str, Any] = dict(traits)
    enriched: dict[str, str] = {}
    flags: set[str] = set(signal_flags)

    email_raw = traits.get("email")
    if isinstance(email_raw, str) and email_raw.strip():
        check = cached_check_email(email_raw, gmail_normalize)
        profile["email"] = check.normalized or email_raw.strip().lower()
        if check.domain:
            profile["email_domain"] = check.domain
            enriched["email_domain"] = "email"
        email_flags = set(check.flags) - set(ignore_flags)
        profile["email_flags"] = sorted(email_flags)
        flags.update(email_flags)
    else:
        profile["email_flags"] = []

    title = traits.get("title") or traits.get("job_title")
    if isinstance(title, str) and title.strip():
        info = parse_title(title)
        if info.seniority and not traits.get("seniority"):
            profile["seniority"] = info.seniority
            enriched["seniority"] = "title"
        if info.department and not traits.get("department"):
            profile["department"] = info.department
            enriched["department"] = "title"

    if firmographics:
        source = str(firmographics.get("_enriched_by", "firmographics"))
        clean = {k: v for k, v in firmographics.items() if not k.startswith("_")}
        before = profile
        profile = fill_missing(profile, clean)
        for key in clean:
            if before.get(key) != profile.get(key) or key not in traits:
                enriched[key] = source

    if account_traits:
        profile["account"] = dict(account_traits)
        company = profile.get("company")
        account_company = {
            k: account_traits[k] for k in ("name", "industry", "employees") if k in account_traits
        }
        if account_company:
            if not isinstance(company, Mapping):
                profile["company"] = account_company
                enriched["company"] = "account"
            else:
                profile["company"] = fill_missing(company, account_company)

    flags -= set(ignore_flags)
    if flags & SPAM_SIGNALS:
        flags.add("spam")
    profile["flags"] = sorted(flags)
    profile["enriched"] = enriched
    return profile
