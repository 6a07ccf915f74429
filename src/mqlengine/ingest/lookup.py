"""Find the person an identity names, normalised exactly as ingest stores identities.

The one lookup by e-mail, user id, anonymous id, phone or external id: the API, the CLI,
the dashboard, the outcome import and the history import all ask it, so an address typed
in another case or a Gmail alias finds the same person everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

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


class PersonFinder:
    """Finds or creates the persons that rows of identities name, on one transaction,
    through the identity graph, as every message is: identities of several persons merge
    them, a new user id does not claim someone else's person. :meth:`prefetch` reads the
    owners of many rows' identities at once."""

    def __init__(self, connection: Connection, now: datetime, *, gmail_normalize: bool) -> None:
        from mqlengine.ingest.identity import IdentityGraph

        self.graph = IdentityGraph(connection, now)
        self.asked: set[tuple[str, str]] = set()  # keys whose owner the graph has looked up
        self.now = now
        self.gmail_normalize = gmail_normalize

    def _message(self, ids: Mapping[str, str | None], at: datetime) -> Any:
        from mqlengine.ingest.messages import Message

        traits: dict[str, Any] = {}
        if ids.get("email"):
            traits["email"] = ids["email"]
        if ids.get("external_id"):
            traits["external_id"] = ids["external_id"]
        return Message(
            type="identify",
            message_id="",
            timestamp=at,
            received_at=self.now,
            name="identify",
            user_id=(ids.get("user_id") or "").strip() or None,
            traits=traits,
        )

    def _keys(self, message: Any) -> list[tuple[str, str]]:
        from mqlengine.ingest.identity import identity_keys

        return identity_keys(message, gmail_normalize=self.gmail_normalize)

    def prefetch(self, rows: Sequence[Mapping[str, str | None]]) -> None:
        keys = {k for ids in rows for k in self._keys(self._message(ids, self.now))}
        self.graph.prefetch(keys - self.asked)
        self.asked |= keys

    def find_or_create(
        self, ids: Mapping[str, str | None], *, at: datetime
    ) -> tuple[int, dict[str, Any] | None]:
        """(person id, the new person's row when it was created now, else None)."""
        from mqlengine.domain.attribution import DIRECT

        message = self._message(ids, at)
        keys = self._keys(message)
        if not keys:
            raise ValidationError("no valid email, user_id or external_id")
        self.graph.prefetch([k for k in keys if k not in self.asked])
        self.asked.update(keys)
        person_id = self.graph.resolve(message, keys, DIRECT)
        self.graph.flush()
        return self.graph.live(person_id), self.graph.created.get(person_id)


def find_or_create_person(
    connection: Connection,
    ids: Mapping[str, str | None],
    *,
    at: datetime,
    now: datetime,
    gmail_normalize: bool = False,
) -> tuple[int, bool]:
    """The person these identities (``user_id``, ``email``, ``external_id``) name, created
    (first seen ``at``) when none does: (person id, created)."""
    finder = PersonFinder(connection, now, gmail_normalize=gmail_normalize)
    person_id, row = finder.find_or_create(ids, at=at)
    return person_id, row is not None
