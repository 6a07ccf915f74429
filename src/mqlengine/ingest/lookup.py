"""Find the person an identity names, normalised exactly as ingest stores identities.

The one lookup by e-mail, user id, anonymous id, phone or external id: the API, the CLI,
the dashboard, the outcome import and the history import all ask it, so an address typed
in another case or a Gmail alias finds the same person everywhere.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from mqlengine.errors import ValidationError
from mqlengine.ingest.identity import email_identity
from mqlengine.ingest.signals import normalize_phone
from mqlengine.store.tables import identities

IDENTITY_KINDS = ("email", "user_id", "anonymous_id", "phone", "external_id")


def normalize_identity(kind: str, value: str, *, gmail_normalize: bool = False) -> str:
    """``value`` as ingest stores an identity of ``kind``: e-mails trimmed and lower-cased
    (and Gmail-normalised when the definition says so), phones in E.164, ids trimmed.
    Raises :class:`ValidationError` for an unknown kind or a phone that is no number."""
    text = value.strip()
    if kind not in IDENTITY_KINDS:
        raise ValidationError(
            f"unknown identity kind '{kind}' (use one of: {', '.join(IDENTITY_KINDS)})"
        )
    if not text:
        raise ValidationError(f"{kind}: empty value")
    if kind == "email":
        return email_identity(text, gmail_normalize) or text.lower()
    if kind == "phone":
        phone = normalize_phone(text)
        if phone is None:
            raise ValidationError(f"phone: {value!r} is not a phone number in E.164 (+CC…)")
        return phone
    return text


def find_person_id(
    connection: Connection, kind: str, value: str, *, gmail_normalize: bool = False
) -> int | None:
    """The person that carries this identity (an identity is unique per kind and always
    points at a live person), or None."""
    normalized = normalize_identity(kind, value, gmail_normalize=gmail_normalize)
    query = select(identities.c.person_id).where(
        identities.c.kind == kind, identities.c.value == normalized
    )
    found = connection.execute(query).scalar_one_or_none()
    return None if found is None else int(found)
