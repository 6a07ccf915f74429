"""E-mail validation, normalisation and classification flags."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqlengine.ingest.emailcheck import (
    EMAIL_FLAGS,
    EmailCheck,
    check_email,
    email_domain,
    is_edu_domain,
    is_role_local_part,
    normalize_domain,
)


def test_valid_company_address_is_trimmed_and_lower_cased() -> None:
    result = check_email("  Jane.Doe@Acme.COM ")
    assert result == EmailCheck(
        raw="  Jane.Doe@Acme.COM ",
        normalized="jane.doe@acme.com",
        domain="acme.com",
        valid=True,
        error=None,
        flags=frozenset(),
    )


@pytest.mark.parametrize(
    ("raw", "error_part"),
    [
        ("jane", "@-sign"),
        ("jane@", "after the @-sign"),
        ("jane@acme", "period"),
        ("jane@@acme.com", "invalid characters"),
        ("jane doe@acme.com", "invalid characters"),
        ("jane..doe@acme.com", "two periods"),
        ("jane@localhost", "period"),
        ("jane@server.test", "special-use"),
    ],
)
def test_invalid_addresses_say_why(raw: str, error_part: str) -> None:
    result = check_email(raw)
    assert not result.valid
    assert result.flags == frozenset({"invalid"})
    assert result.error is not None and error_part in result.error
    assert result.normalized == raw.strip().lower()


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_missing_address(raw: str | None) -> None:
    result = check_email(raw)
    assert (result.valid, result.normalized, result.domain) == (False, None, None)
    assert result.error == "no e-mail address given"
    assert result.flags == {"invalid"}


def test_invalid_address_keeps_domain_when_it_has_one() -> None:
    assert check_email("jane@acme").domain == "acme"
    assert check_email("jane").domain is None


@pytest.mark.parametrize(
    ("raw", "flag"),
    [
        ("someone@gmail.com", "free_mail"),
        ("someone@outlook.com", "free_mail"),
        ("someone@proton.me", "free_mail"),
        ("someone@yahoo.co.uk", "free_mail"),
        ("someone@gmx.de", "free_mail"),
        ("someone@mailinator.com", "disposable"),
        ("someone@guerrillamail.com", "disposable"),
        ("someone@x7.mailinator.com", "disposable"),
        ("info@acme.com", "role_account"),
        ("no-reply@acme.com", "role_account"),
        ("Sales.EMEA@acme.com", "role_account"),
        ("support+tickets@acme.com", "role_account"),
        ("customer.service@acme.com", "role_account"),
        ("jane@mit.edu", "edu_domain"),
        ("jane@ox.ac.uk", "edu_domain"),
        ("jane@unimelb.edu.au", "edu_domain"),
        ("jane@u-tokyo.ac.jp", "edu_domain"),
        ("jane@student.uva.nl", "edu_domain"),
        ("jane@stud.uni-heidelberg.de", "edu_domain"),
    ],
)
def test_flags(raw: str, flag: str) -> None:
    result = check_email(raw)
    assert result.valid
    assert flag in result.flags
    assert result.flags <= EMAIL_FLAGS


@pytest.mark.parametrize(
    "raw",
    ["jane.doe@acme.com", "john.sales@acme.com", "infosec.lead@acme.io", "jane@acme.co.uk"],
)
def test_ordinary_company_addresses_have_no_flags(raw: str) -> None:
    assert check_email(raw).flags == frozenset()


def test_flags_combine() -> None:
    assert check_email("info@gmail.com").flags == {"free_mail", "role_account"}


def test_gmail_normalisation_folds_dots_tags_and_googlemail() -> None:
    result = check_email("J.Doe+webinar@GoogleMail.com", gmail_normalize=True)
    assert result.normalized == "jdoe@gmail.com"
    assert result.domain == "gmail.com"
    assert check_email("jdoe@gmail.com", gmail_normalize=True).normalized == result.normalized


def test_gmail_normalisation_is_opt_in() -> None:
    assert check_email("J.Doe+webinar@gmail.com").normalized == "j.doe+webinar@gmail.com"


def test_plus_tags_folded_for_plus_addressing_providers_but_dots_kept() -> None:
    assert (
        check_email("j.doe+x@outlook.com", gmail_normalize=True).normalized == "j.doe@outlook.com"
    )
    assert check_email("j.doe+x@proton.me", gmail_normalize=True).normalized == "j.doe@proton.me"
    assert check_email("a+b@fastmail.com", gmail_normalize=True).normalized == "a@fastmail.com"


def test_company_addresses_never_folded() -> None:
    assert check_email("j.doe+x@acme.com", gmail_normalize=True).normalized == "j.doe+x@acme.com"


def test_folding_never_empties_the_local_part() -> None:
    assert check_email("+tag@gmail.com", gmail_normalize=True).normalized == "+tag@gmail.com"


def test_internationalised_domain() -> None:
    result = check_email("anna@Bücher.example")
    assert result.valid
    assert result.domain == "bücher.example"


def test_mailto_prefix_is_tolerated() -> None:
    assert check_email("mailto:ann@acme.io").normalized == "ann@acme.io"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Acme.com", "acme.com"),
        ("www.acme.com", "acme.com"),
        ("  WWW.Acme.COM. ", "acme.com"),
        ("https://www.acme.com/about?x=1", "acme.com"),
        ("http://acme.com:8080", "acme.com"),
        ("acme.com/pricing", "acme.com"),
        ("wwwacme.com", "wwwacme.com"),
        ("eu.acme.com", "eu.acme.com"),
    ],
)
def test_normalize_domain(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


def test_email_domain() -> None:
    assert email_domain("Jane@WWW.Acme.com") == "acme.com"
    assert email_domain("a@b@acme.com") == "acme.com"
    assert email_domain("no-at-sign") is None
    assert email_domain(None) is None
    assert email_domain("jane@") is None


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("info", True),
        ("do.not.reply", True),
        ("postmaster", True),
        ("hr", True),
        ("sales-de", True),
        ("jane", False),
        ("john.sales", False),
        ("salesforce", False),
        ("information.security.jane", False),
    ],
)
def test_role_local_parts(local: str, expected: bool) -> None:
    assert is_role_local_part(local) is expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("harvard.edu", True),
        ("cs.stanford.edu", True),
        ("ed.ac.uk", True),
        ("tsinghua.edu.cn", True),
        ("students.bham.ac.uk", True),
        ("k12.ca.us", True),
        ("acme.com", False),
        ("education.com", False),
        ("student.com", False),
        ("student.co.uk", False),
        ("acme.ac", False),
        ("localhost", False),
    ],
)
def test_edu_domains(domain: str, expected: bool) -> None:
    assert is_edu_domain(domain) is expected


@given(st.one_of(st.none(), st.text(max_size=80)), st.booleans())
def test_never_raises_and_is_consistent(raw: str | None, fold: bool) -> None:
    result = check_email(raw, gmail_normalize=fold)
    assert result.flags <= EMAIL_FLAGS
    assert result.valid == ("invalid" not in result.flags)
    assert result.valid == (result.error is None)
    if result.valid:
        assert result.normalized is not None and result.domain is not None
        assert result.normalized.endswith("@" + result.domain)


@given(st.emails(), st.booleans())
def test_normalisation_is_idempotent(address: str, fold: bool) -> None:
    first = check_email(address, gmail_normalize=fold)
    if first.valid:
        assert first.normalized is not None
        again = check_email(first.normalized, gmail_normalize=fold)
        assert (again.normalized, again.domain, again.flags) == (
            first.normalized,
            first.domain,
            first.flags,
        )


# --- validate_address is validate_email, faster ------------------------------------------

TRICKY_ADDRESSES = [
    "jane@acme.com",
    "Jane.Doe+tag@Acme.COM",
    "INFO@acme.com",  # a mailbox name the library lower-cases
    "Postmaster@Sub.Example.org",
    "a@b.co",
    "a@b.c",
    "a@b.123",
    "a@localhost",
    "a@example.local",
    "a@printer.test",
    "a@x.arpa",
    "a@xn--bcher-kva.ch",
    "a@xn--bcher.ch",
    "a@xn--zz.com",
    "a@ab--cd.com",
    "a@-acme.com",
    "a@acme-.com",
    "a@acme..com",
    "a@.acme.com",
    "a@acme.com.",
    ".a@acme.com",
    "a.@acme.com",
    "a..b@acme.com",
    "a@acme",
    "@acme.com",
    "a@",
    "a@@acme.com",
    "a@b@acme.com",
    "!#$%&'*+/=?^_`{|}~-@acme.com",
    "a" * 64 + "@acme.com",
    "a" * 65 + "@acme.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
    "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".com",
    "a@" + ".".join(["b" * 60] * 4) + ".com",
    '"jane doe"@acme.com',
    '"jane"@acme.com',
    "Jane <jane@acme.com>",
    "<jane@acme.com>",
    "jane@[192.168.0.1]",
    "jane@bücher.ch",
    "jäne@acme.com",
    "jane@ACME.COM",
    "jane＠acme.com",
    "jane@acme.com ",
    "jane@acme.c0m",
    "jane@1.2.3.4",
    "x@mailinator.com",
    "x@student.uva.nl",
]


def validation_outcome(validate: object, text: str) -> tuple[str, object]:
    from email_validator import EmailNotValidError

    try:
        result = validate(text)  # type: ignore[operator]
    except EmailNotValidError as error:
        return "error", (type(error), str(error))
    return "valid", (result.local_part, result.domain, result.ascii_domain)


def assert_same_validation(text: str) -> None:
    from email_validator import validate_email

    from mqlengine.ingest.emailcheck import validate_address

    expected = validation_outcome(lambda t: validate_email(t, check_deliverability=False), text)
    for _ in range(2):  # the second time with the domain cached
        assert validation_outcome(validate_address, text) == expected


@pytest.mark.parametrize("text", TRICKY_ADDRESSES)
def test_validate_address_agrees_with_email_validator(text: str) -> None:
    assert_same_validation(text)


@given(
    st.text("abAB.-_+'0@", min_size=1, max_size=12),
    st.sampled_from(["acme.com", "ACME.com", "a-b.co.uk", "xn--bcher-kva.ch", "b.c", "local"]),
)
def test_validate_address_agrees_on_generated_addresses(local: str, domain: str) -> None:
    assert_same_validation(f"{local}@{domain}")
    assert_same_validation(f"{local}")


@given(st.text(max_size=30))
def test_validate_address_agrees_on_any_text(text: str) -> None:
    assert_same_validation(text)


def test_flags_of_many_addresses_at_one_domain_agree_with_a_fresh_check() -> None:
    from mqlengine.ingest import emailcheck

    addresses = [f"{local}@gmail.com" for local in ("jane", "info", "sales.emea", "x")]
    first = [check_email(a) for a in addresses]
    emailcheck._domain_flags.cache_clear()
    emailcheck._validate_domain.cache_clear()
    assert [check_email(a) for a in reversed(addresses)] == list(reversed(first))
    assert [c.flags for c in first] == [
        {"free_mail"},
        {"free_mail", "role_account"},
        {"free_mail", "role_account"},
        {"free_mail"},
    ]
