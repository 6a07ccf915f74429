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


# User agents repeat enormously (one per visitor, and few distinct ones among them), and
# a verdict not yet cached scans the whole crawler list.
@functools.lru_cache(maxsize=16384)
def _bot(user_agent: str) -> bool:
    return is_bot_user_agent(user_agent)


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


# A hit: (check, field the check looked at). In the order the policy is applied: the
# e-mail checks as listed in EMAIL_CHECKS, then the signal checks by name.
Hit = tuple[str, str]
_BOT_HIT: tuple[Hit, ...] = (("bot", "context.userAgent"),)
_FORM_FIELDS = ("form_fill_seconds", "time_to_submit_ms")  # what check_form measures


@dataclass(frozen=True, slots=True, eq=False)
class _Plan:
    """A validation policy prepared for per-message use: a lookup per check, not a scan of
    the policy's list, and the verdict for each combination of hits computed once."""

    policy: ValidationPolicy
    actions: dict[str, CheckAction]
    form_keys: frozenset[str]  # properties check_form reads: no such key, no form hit
    verdicts: dict[tuple[Hit, ...], Verdict]

    def verdict(self, hits: tuple[Hit, ...]) -> Verdict:
        found = self.verdicts.get(hits)
        if found is None:
            found = self.verdicts[hits] = self._decide(hits)
        return found

    def _decide(self, hits: tuple[Hit, ...]) -> Verdict:
        flags: set[str] = set()
        for name, where in hits:
            action = self.actions[name]
            if action is CheckAction.REJECT:
                return Verdict(rejection=(where, f"rejected by validation check '{name}'"))
            if action is CheckAction.FLAG and name in SIGNAL_CHECKS:
                flags.add(name)
        return Verdict(flags=frozenset(flags))


_PLANS: dict[int, _Plan] = {}  # by id() of the policy; the plan keeps its policy alive
_LAST_PLAN: _Plan | None = None


def _plan(policy: ValidationPolicy) -> _Plan:
    global _LAST_PLAN
    plan = _LAST_PLAN  # the common case: one definition, message after message
    if plan is not None and plan.policy is policy:
        return plan
    plan = _PLANS.get(id(policy))
    if plan is not None and plan.policy is policy:
        _LAST_PLAN = plan
        return plan
    plan = _Plan(
        policy,
        {name: policy.action(name) for name in (*EMAIL_CHECKS, *SIGNAL_CHECKS)},
        frozenset((*policy.honeypot_fields, *_FORM_FIELDS)),
        {},
    )
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[id(policy)] = _LAST_PLAN = plan
    return plan


@functools.lru_cache(maxsize=256)
def _email_hits(valid: bool, flags: frozenset[str]) -> tuple[Hit, ...]:
    hits: list[Hit] = []
    if not valid:
        hits.append(("invalid_email", "traits.email"))
    for name, flag in EMAIL_CHECKS.items():
        if flag in flags and name != "invalid_email":
            hits.append((name, "traits.email"))
    return tuple(hits)


def _signal_hits(
    plan: _Plan, kind: str, properties: dict[str, Any], context: dict[str, Any]
) -> tuple[Hit, ...]:
    user_agent = context.get("userAgent")
    hits = _BOT_HIT if isinstance(user_agent, str) and _bot(user_agent) else ()
    if kind == "track" and properties and not plan.form_keys.isdisjoint(properties):
        policy = plan.policy
        form = check_form(
            properties,
            honeypot_fields=policy.honeypot_fields,
            min_fill_seconds=policy.min_form_seconds,
        )
        if form:
            hits += tuple((name, "properties") for name in sorted(form))
    return hits


def signal_hits(
    kind: str, properties: dict[str, Any], context: dict[str, Any], policy: ValidationPolicy
) -> set[str]:
    """Which behavioural checks fire for one message (before the policy is applied)."""
    return {name for name, _ in _signal_hits(_plan(policy), kind, properties, context)}


def check_message(
    message: Message, policy: ValidationPolicy, *, gmail_normalize: bool = False
) -> Verdict:
    plan = _plan(policy)
    hits = _signal_hits(plan, message.type, message.properties, message.context)
    if message.type != "group" and message.traits:
        email = message.traits.get("email")
        if isinstance(email, str) and email.strip():
            check = cached_check_email(email, gmail_normalize)
            if not check.valid or check.flags:
                hits = _email_hits(check.valid, check.flags) + hits
    return plan.verdict(hits) if hits else ACCEPT
