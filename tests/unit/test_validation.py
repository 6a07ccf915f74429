"""The validate step: verdicts per policy, against a plain reading of the rules."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mqlengine.domain.rules import VALIDATION_CHECKS, CheckAction, ValidationPolicy
from mqlengine.ingest.messages import Message
from mqlengine.ingest.signals import check_form, is_bot_user_agent
from mqlengine.ingest.validation import (
    ACCEPT,
    EMAIL_CHECKS,
    SIGNAL_CHECKS,
    Verdict,
    cached_check_email,
    check_message,
    signal_hits,
)
from support.clock import NOW

# --- the reference: every check run and the policy consulted per hit ----------------------


def reference_signal_hits(
    kind: str, properties: dict[str, Any], context: dict[str, Any], policy: ValidationPolicy
) -> set[str]:
    hits: set[str] = set()
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str) and is_bot_user_agent(user_agent):
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


def reference_check(
    message: Message, policy: ValidationPolicy, *, gmail_normalize: bool = False
) -> Verdict:
    hits: list[tuple[str, str]] = []
    if message.type != "group":
        email = message.traits.get("email")
        if isinstance(email, str) and email.strip():
            check = cached_check_email(email, gmail_normalize)
            if not check.valid:
                hits.append(("invalid_email", "traits.email"))
            for name, flag in EMAIL_CHECKS.items():
                if flag in check.flags and name != "invalid_email":
                    hits.append((name, "traits.email"))
    for name in sorted(
        reference_signal_hits(message.type, message.properties, message.context, policy)
    ):
        hits.append((name, "context.userAgent" if name == "bot" else "properties"))
    if not hits:
        return Verdict()
    flags: set[str] = set()
    for name, field in hits:
        action = policy.action(name)
        if action is CheckAction.REJECT:
            return Verdict(rejection=(field, f"rejected by validation check '{name}'"))
        if action is CheckAction.FLAG and name in SIGNAL_CHECKS:
            flags.add(name)
    return Verdict(flags=frozenset(flags))


# --- generated messages and policies ------------------------------------------------------

EMAILS = [
    "jane@acme-analytics.com",
    "jane@gmail.com",
    "info@acme-analytics.com",
    "sales.emea@gmail.com",
    "x@mailinator.com",
    "student@ox.ac.uk",
    "info@stanford.edu",
    "not an address",
    "   ",
    "J.Doe+webinar@googlemail.com",
]
USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "",
    "HeadlessChrome/124",
]
FORM_PROPERTIES = st.dictionaries(
    st.sampled_from(["plan", "hp", "honeypot", "trap", "form_fill_seconds", "time_to_submit_ms"]),
    st.one_of(st.sampled_from(["", " ", "x", "1.5", "12"]), st.integers(0, 9000), st.none()),
    max_size=4,
)
POLICIES = st.builds(
    ValidationPolicy,
    checks=st.lists(
        st.tuples(st.sampled_from(sorted(VALIDATION_CHECKS)), st.sampled_from(list(CheckAction))),
        max_size=5,
    ).map(tuple),
    honeypot_fields=st.sampled_from([("website_url_confirm", "hp", "honeypot"), ("trap",), ()]),
    min_form_seconds=st.sampled_from([0.0, 3.0, 10.0]),
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from(["track", "page", "identify", "group", "alias"]))
    traits: dict[str, Any] = {}
    if draw(st.booleans()):
        traits["email"] = draw(st.one_of(st.sampled_from(EMAILS), st.integers(0, 9)))
    context: dict[str, Any] = {}
    if draw(st.booleans()):
        context["userAgent"] = draw(st.one_of(st.sampled_from(USER_AGENTS), st.none()))
    return Message(
        type=kind,
        message_id="m",
        timestamp=NOW,
        received_at=NOW,
        name="N",
        anonymous_id="a",
        properties=draw(FORM_PROPERTIES),
        traits=traits,
        context=context,
    )


@settings(max_examples=800)
@given(messages(), POLICIES, st.booleans())
def test_check_message_agrees_with_the_reference(
    message: Message, policy: ValidationPolicy, gmail_normalize: bool
) -> None:
    expected = reference_check(message, policy, gmail_normalize=gmail_normalize)
    for _ in range(2):  # the second time from the caches
        assert check_message(message, policy, gmail_normalize=gmail_normalize) == expected
    assert signal_hits(
        message.type, message.properties, message.context, policy
    ) == reference_signal_hits(message.type, message.properties, message.context, policy)


def test_equal_policies_of_different_definitions_are_kept_apart() -> None:
    """Verdicts prepared for one policy are never served for another, however many."""
    message = Message(
        type="page",
        message_id="m",
        timestamp=NOW,
        received_at=NOW,
        name="Page Viewed",
        anonymous_id="a",
        context={"userAgent": "curl/8.5.0"},
    )
    actions = [CheckAction.REJECT, CheckAction.FLAG, CheckAction.IGNORE]
    policies = [ValidationPolicy(checks=(("bot", actions[i % 3]),)) for i in range(200)]
    for _ in range(2):
        for i, policy in enumerate(policies):
            verdict = check_message(message, policy)
            if actions[i % 3] is CheckAction.REJECT:
                assert verdict.rejection == (
                    "context.userAgent",
                    "rejected by validation check 'bot'",
                )
            elif actions[i % 3] is CheckAction.FLAG:
                assert verdict == Verdict(flags=frozenset({"bot"}))
            else:
                assert verdict == ACCEPT


def test_the_first_rejecting_check_names_the_field() -> None:
    policy = ValidationPolicy(
        checks=(("free_mail", CheckAction.REJECT), ("bot", CheckAction.REJECT))
    )
    message = Message(
        type="identify",
        message_id="m",
        timestamp=NOW,
        received_at=NOW,
        name="Identify",
        user_id="u",
        traits={"email": "jane@gmail.com"},
        context={"userAgent": "curl/8.5.0"},
    )
    assert check_message(message, policy).rejection == (
        "traits.email",
        "rejected by validation check 'free_mail'",
    )
