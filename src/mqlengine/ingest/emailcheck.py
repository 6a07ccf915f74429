"""E-mail address validation and classification for the ingest pipeline's validate step.

The pipeline needs two things from an address: is it usable at all (syntax, checked by
``email-validator`` without DNS, because ingest must not touch the network), and what does
it say about the lead: a personal mailbox (``free_mail``), a throw-away one
(``disposable``), a shared inbox rather than a person (``role_account``) or a school
(``edu_domain``). Those are *flags*, not rejections: the MQL definition decides what they
cost. Everything here is pure and deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from typing import NamedTuple
from urllib.parse import urlsplit

import email_validator
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from email_validator.syntax import (
    DomainNameValidationResult,
    validate_email_domain_name,
    validate_email_length,
    validate_email_local_part,
)

EMAIL_FLAGS = frozenset({"invalid", "free_mail", "disposable", "role_account", "edu_domain"})

# Local parts that name a function or a machine, not a person. Compared with ".", "-" and
# "_" removed, so "no-reply", "no_reply" and "noreply" are one entry.
ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse", "accounting", "accounts", "admin", "administrator", "all", "billing",
        "bookings", "careers", "contact", "contactus", "customercare", "customerservice",
        "customersuccess", "cs", "dev", "developers", "donotreply", "email", "enquiries",
        "enquiry", "events", "everyone", "feedback", "finance", "general", "hello", "help",
        "helpdesk", "hi", "hostmaster", "hr", "info", "information", "inquiries", "inquiry",
        "invoice", "invoices", "it", "jobs", "legal", "mail", "mailerdaemon", "marketing",
        "media", "news", "newsletter", "noreply", "notifications", "office", "ops", "orders",
        "partners", "partnerships", "postmaster", "pr", "press", "privacy", "purchasing",
        "reception", "recruiting", "recruitment", "reservations", "root", "sales", "security",
        "service", "services", "staff", "support", "sysadmin", "team", "webmaster", "welcome",
    }
)  # fmt: skip
# Region/variant suffixes that keep a role address a role address: "sales.emea", "info-de".
_ROLE_QUALIFIERS = frozenset(
    {"de", "uk", "us", "fr", "es", "it", "nl", "eu", "emea", "apac", "amer", "na", "latam",
     "global", "intl", "team", "dept", "desk"}
)  # fmt: skip

# Providers that document plus-addressing ("name+tag@") as delivering to "name@". Gmail
# also ignores dots in the local part and treats googlemail.com as gmail.com.
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
PLUS_ADDRESSING_DOMAINS = frozenset(
    {
        # Microsoft consumer mail: "Plus addressing in Outlook.com" (support.microsoft.com)
        "outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "live.co.uk",
        "outlook.de", "hotmail.de", "outlook.fr", "hotmail.fr", "live.fr",
        # Fastmail: "Plus addressing and subdomain addressing" (fastmail.help)
        "fastmail.com", "fastmail.fm",
        # Proton Mail: "+aliases" deliver to the base address (proton.me/support)
        "proton.me", "protonmail.com", "protonmail.ch", "pm.me",
    }
)  # fmt: skip

_STUDENT_LABELS = frozenset({"student", "students", "stud", "studenti", "etu", "etud", "alumni"})
_EDU_SECOND_LEVEL = frozenset({"edu", "ac"})
_GENERIC_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu"})
_COUNTRY_TLD = re.compile(r"[a-z]{2}")


@dataclass(frozen=True, slots=True)
class EmailCheck:
    """The verdict on one address.

    ``normalized`` is the trimmed, lower-cased address (with provider aliases folded when
    asked); it is kept even when invalid so callers can show it, but only a ``valid``
    address should be used as an identity. ``domain`` is the normalised domain, or None
    when the address has no usable ``@``. ``error`` says, for a person, why it is invalid.
    An invalid address carries only the ``invalid`` flag: classifying garbage is guessing.
    """

    raw: str | None
    normalized: str | None
    domain: str | None
    valid: bool
    error: str | None = None
    flags: frozenset[str] = field(default_factory=frozenset)


def normalize_domain(domain: str) -> str:
    """Lower-case a domain and strip ``www.``, a trailing dot, and any URL around it.

    Accepts what people paste into a "website" field ("https://www.Acme.com/about") so that
    account matching compares like with like.
    """
    text = domain.strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    else:
        text = text.split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    text = text.strip().rstrip(".")
    return text.removeprefix("www.")


def email_domain(email: str | None) -> str | None:
    """The normalised domain of an address (after the last ``@``), or None without one.

    Deliberately no full validation: this serves account matching on data that was
    validated on the way in.
    """
    if email is None or "@" not in email:
        return None
    domain = normalize_domain(email.rsplit("@", 1)[1])
    return domain or None


def check_email(raw: str | None, *, gmail_normalize: bool = False) -> EmailCheck:
    """Validate and classify an address; never raises.

    With ``gmail_normalize`` the address is folded to the mailbox it delivers to, so one
    person typing ``J.Doe+webinar@googlemail.com`` and ``jdoe@gmail.com`` resolves to one
    identity: for Gmail dots and ``+tags`` are removed and googlemail.com becomes
    gmail.com; for providers in ``PLUS_ADDRESSING_DOMAINS`` only ``+tags`` are removed
    (their dots are significant). Other domains are left alone: a company server may route
    ``a+b@`` to a different person.
    """
    if raw is None or not raw.strip():
        return EmailCheck(raw, None, None, False, "no e-mail address given", frozenset({"invalid"}))
    text = raw.strip().removeprefix("mailto:").strip()
    normalized = text.lower()
    try:
        result = validate_address(text)
    except EmailNotValidError as exc:
        domain = email_domain(normalized)
        return EmailCheck(raw, normalized, domain, False, str(exc), frozenset({"invalid"}))

    local = result.local_part.lower()
    flags = _classify(local, result.ascii_domain.lower())  # the lists are ASCII (punycode)
    domain = result.domain.lower()
    if gmail_normalize:
        local, domain = _fold_alias(local, domain)
    return EmailCheck(raw, f"{local}@{domain}", domain, True, None, flags)


class Address(NamedTuple):
    """What :func:`validate_address` keeps of ``email_validator``'s result."""

    local_part: str
    domain: str
    ascii_domain: str


# ASCII, one "@", no quoting, display name or bracketed IP: email_validator takes such an
# address apart at the "@" as it stands (``split_email``), so its checks can be run on the
# two parts directly.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


def validate_address(text: str) -> Address:
    """``validate_email(text, check_deliverability=False)``, with the same verdict and
    parts, at a fraction of the cost for the usual address: the domain half of the checks
    (most of the work) is done once per domain. Raises ``EmailNotValidError`` as it does."""
    if _PLAIN_ADDRESS.fullmatch(text):
        try:
            return _validate_plain(text)
        except EmailNotValidError:
            pass  # the full validation names the problem, in its own order of checks
    result = validate_email(text, check_deliverability=False)
    return Address(result.local_part, result.domain, result.ascii_domain)


def _validate_plain(text: str) -> Address:
    """The checks ``validate_email`` makes on a plain address (see ``_PLAIN_ADDRESS``):
    the local part, the domain (cached), and the lengths; with the library's defaults
    read at call time, as it reads them."""
    local, domain_part = text.split("@")
    local_info = validate_email_local_part(
        local,
        allow_smtputf8=email_validator.ALLOW_SMTPUTF8,
        allow_empty_local=email_validator.ALLOW_EMPTY_LOCAL,
        quoted_local_part=False,
        strict=email_validator.STRICT,
    )
    domain_info = _validate_domain(
        domain_part, email_validator.TEST_ENVIRONMENT, email_validator.GLOBALLY_DELIVERABLE
    )
    result = ValidatedEmail()
    result.original = text
    result.local_part = local_info["local_part"]
    result.ascii_local_part = local_info["ascii_local_part"]
    if (
        result.ascii_local_part is not None
        and result.ascii_local_part.lower() in CASE_INSENSITIVE_MAILBOX_NAMES
    ):
        result.ascii_local_part = result.ascii_local_part.lower()
        result.local_part = result.local_part.lower()
    result.domain = domain_info["domain"]
    result.ascii_domain = domain_info["ascii_domain"]
    result.normalized = result.local_part + "@" + result.domain
    validate_email_length(result)
    return Address(result.local_part, result.domain, result.ascii_domain)


@lru_cache(maxsize=8192)
def _validate_domain(
    domain: str, test_environment: bool, globally_deliverable: bool
) -> DomainNameValidationResult:
    # Only a domain that passes is cached (an exception is not): every address of a
    # company shares it.
    return validate_email_domain_name(
        domain, test_environment=test_environment, globally_deliverable=globally_deliverable
    )


def _fold_alias(local: str, domain: str) -> tuple[str, str]:
    if domain in GMAIL_DOMAINS:
        folded = local.split("+", 1)[0].replace(".", "")
        return (folded or local), "gmail.com"
    if domain in PLUS_ADDRESSING_DOMAINS:
        return (local.split("+", 1)[0] or local), domain
    return local, domain


def _classify(local: str, domain: str) -> frozenset[str]:
    flags = _domain_flags(domain)
    if is_role_local_part(local):
        return flags | {"role_account"}
    return flags


@lru_cache(maxsize=8192)
def _domain_flags(domain: str) -> frozenset[str]:
    """The flags a domain alone decides: the same for every address there."""
    flags: set[str] = set()
    suffixes = _domain_suffixes(domain)
    disposable, not_disposable = _disposable_lists()
    if any(s in disposable for s in suffixes) and not any(s in not_disposable for s in suffixes):
        flags.add("disposable")
    if any(s in _free_mail_domains() for s in suffixes):
        flags.add("free_mail")
    if is_edu_domain(domain):
        flags.add("edu_domain")
    return frozenset(flags)


_ROLE_SEPARATORS = re.compile(r"[._-]")


def is_role_local_part(local: str) -> bool:
    """Whether a local part names a shared inbox (``info``, ``sales.emea``, ``no-reply``)."""
    base = local.lower().split("+", 1)[0]
    if _ROLE_SEPARATORS.sub("", base) in ROLE_LOCAL_PARTS:
        return True
    parts = [p for p in _ROLE_SEPARATORS.split(base) if p]
    return (
        bool(parts)
        and parts[0] in ROLE_LOCAL_PARTS
        and all(p in ROLE_LOCAL_PARTS or p in _ROLE_QUALIFIERS for p in parts[1:])
    )


def is_edu_domain(domain: str) -> bool:
    """Whether a domain belongs to a school or university, or a student mail subdomain.

    ``.edu``; ``edu``/``ac`` under a country code (``ox.ac.uk``, ``unimelb.edu.au``,
    ``u-tokyo.ac.jp``); ``k12`` school districts; and subdomains such as
    ``student.uva.nl`` or ``stud.uni-heidelberg.de``, which universities hand to students.
    """
    labels = normalize_domain(domain).split(".")
    if len(labels) < 2:
        return False
    if labels[-1] == "edu" or "k12" in labels[:-1]:
        return True
    if len(labels) >= 3 and labels[-2] in _EDU_SECOND_LEVEL and _COUNTRY_TLD.fullmatch(labels[-1]):
        return True
    # Only labels left of the registrable domain count: "student.uva.nl", not "student.co.uk".
    second_level = len(labels) >= 3 and labels[-2] in _GENERIC_SECOND_LEVEL
    registrable = 3 if second_level and _COUNTRY_TLD.fullmatch(labels[-1]) else 2
    return any(label in _STUDENT_LABELS for label in labels[:-registrable])


def _domain_suffixes(domain: str) -> list[str]:
    """``a.b.example.com`` → itself and its parents down to ``example.com``.

    Disposable services hand out random subdomains, and list files name the parent.
    """
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]


@cache
def _disposable_lists() -> tuple[frozenset[str], frozenset[str]]:
    # Imported here: the package is a ~10k-entry literal, loaded on first use only.
    import disposable_email_domains

    return frozenset(disposable_email_domains.blocklist), frozenset(
        disposable_email_domains.allowlist
    )


@cache
def _free_mail_domains() -> frozenset[str]:
    text = (
        resources.files("mqlengine.ingest")
        .joinpath("data/free_mail_domains.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
