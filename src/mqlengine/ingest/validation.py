"""The validate step: run every check on a message and apply the definition's policy.

Checks observe (:mod:`~mqlengine.ingest.emailcheck`, :mod:`~mqlengine.ingest.signals`);
the definition's ``validation:`` section decides per check whether a hit rejects the
message, flags the person, or is ignored. Pure and offline: no DNS, no HTTP.

Check names and the flag each one leaves:

================  ===================  ==========================================
check             flag                 fires when
================  ===================  ==========================================
invalid_email     ``invalid``          the e-mail trait is not a usable address
disposable        ``disposable``       throw-away mailbox provider
free_mail         ``free_mail``        personal mailbox provider
role_account      ``role_account``     shared inbox (info@, sales@ …)
edu_domain        ``edu_domain``       school or university
bot               ``bot``              crawler / automation user agent
honeypot          ``honeypot``         a hidden form field carries a value
too_fast          ``too_fast``         the form was filled faster than allowed
================  ===================  ==========================================
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from mqlengine.domain.rules import CheckAction, ValidationPolicy
from mqlengine.ingest.emailcheck import EmailCheck, check_email
from mqlengine.ingest.messages import Message
from mqlengine.ingest.signals import check_form, is_bot_user_agent

EMAIL_CHECKS = {
    "invalid_email": "invalid",
    "disposable": "disposable",
    "free_mail": "free_mail",
    "role_account": "role_account",
    "edu_domain": "edu_domain",
}
SIGNAL_CHECKS = ("bot", "honeypot", "too_fast")


@functools.lru_cache(maxsize=65536)
def cached_check_email(raw: str, gmail_normalize: bool = False) -> EmailCheck:
    """:func:`check_email` with a cache: the same address arrives with every message of a
    session, and syntax validation is the most expensive part of ingesting one."""
    return check_email(raw, gmail_normalize=gmail_normalize)


@functools.lru_cache(maxsize=4096)
def _bot(user_agent: str) -> bool:
    return is_bot_user_agent(user_agent)  # the pattern list is long; user agents repeat


@dataclass(frozen=True, slots=True)
class Verdict:
    """``flags``: signal flags to record on the person; ``rejection``: (field, reason)."""

    flags: frozenset[str] = frozenset()
    rejection: tuple[str, str] | None = None


ACCEPT = Verdict()


def ignored_flags(policy: ValidationPolicy) -> frozenset[str]:
    """Flags the definition wants ignored: the profile must not carry them."""
    ignored = policy.checks_with(CheckAction.IGNORE)
    return frozenset(EMAIL_CHECKS.get(name, name) for name in ignored)


def signal_hits(
    kind: str, properties: dict[str, Any], context: dict[str, Any], policy: ValidationPolicy
) -> set[str]:
    """Which behavioural checks fire for one message (before the policy is applied)."""
    hits: set[str] = set()
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str) and _bot(user_agent):
        hits.add("bot")
    if kind == "track" and properties:
        hits.update(
            check_form(
                properties,
                honeypot_fields=policy.honeypot_fields,
                min_fill_seconds=policy.min_form_seconds,
            )
        )
    return hits


def check_message(
    message: Message, policy: ValidationPolicy, *, gmail_normalize: bool = False
) -> Verdict:
    hits: list[tuple[str, str]] = []  # (check, field)
    if message.type != "group":
        email = message.traits.get("email")
        if isinstance(email, str) and email.strip():
            check = cached_check_email(email, gmail_normalize)
            if not check.valid:
                hits.append(("invalid_email", "traits.email"))
            for name, flag in EMAIL_CHECKS.items():
                if flag in check.flags and name != "invalid_email":
                    hits.append((name, "traits.email"))
    for name in sorted(signal_hits(message.type, message.properties, message.context, policy)):
        hits.append((name, "context.userAgent" if name == "bot" else "properties"))
    if not hits:
        return ACCEPT
    flags: set[str] = set()
    for name, field in hits:
        action = policy.action(name)
        if action is CheckAction.REJECT:
            return Verdict(rejection=(field, f"rejected by validation check '{name}'"))
        if action is CheckAction.FLAG and name in SIGNAL_CHECKS:
            flags.add(name)
    return Verdict(flags=frozenset(flags))
