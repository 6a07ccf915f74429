"""A person and an account as the write path sees them: typed, immutable values.

The write path reads a narrow slice of each person (what scoring, lifecycle and the
profile need) and hands it from stage to stage; each stage that changes something makes
a new value (``person._replace(...)``), so no stage edits a row another one holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

# The person columns the write path reads and the writer's memory keeps. The epoch
# triggers of migration 0008 must watch every one of them (bar ``id``).
PERSON_COLUMNS = (
    "id",
    "traits",
    "profile",
    "flags",
    "email",
    "account_id",
    "channel",
    "last_seen_at",
    "stage",
    "recycled_at",
    "scored_at",
    "total_score",
    "definition_version",
    "merged_into",
)


class Person(NamedTuple):
    """One person's row (the columns of :data:`PERSON_COLUMNS`). ``traits`` is None when
    they were not read (most batches only need them for persons whose profile changes).

    A named tuple rather than a frozen dataclass: the write path makes a new one for
    every person it touches, two or three times a batch, and a frozen dataclass costs
    about four times as much to copy (``dataclasses.replace``: ~7 µs against ~1.7 µs),
    a few per cent of the server's time per event."""

    id: int
    profile: Mapping[str, Any]
    flags: tuple[str, ...]
    email: str | None
    account_id: int | None
    channel: str | None
    last_seen_at: datetime
    stage: str
    recycled_at: datetime | None
    scored_at: datetime | None
    total_score: float
    definition_version: str | None
    merged_into: int | None
    traits: Mapping[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Person:
        """From a database row (any mapping holding the columns; ``traits`` optional)."""
        return cls(
            id=row["id"],
            profile=row["profile"] or {},
            flags=tuple(row["flags"] or ()),
            email=row["email"],
            account_id=row["account_id"],
            channel=row["channel"],
            last_seen_at=row["last_seen_at"],
            stage=row["stage"],
            recycled_at=row["recycled_at"],
            scored_at=row["scored_at"],
            total_score=row["total_score"] if row["total_score"] is not None else 0.0,
            definition_version=row["definition_version"],
            merged_into=row["merged_into"],
            traits=row.get("traits"),
        )

    @classmethod
    def created(cls, row: Mapping[str, Any]) -> Person:
        """A person as the row that made it leaves it: unscored, no e-mail, no account."""
        return cls(
            row["id"],
            row["profile"],
            tuple(row["flags"]),
            None,
            None,
            row["channel"],
            row["last_seen_at"],
            row["stage"],
            None,
            None,
            0.0,
            None,
            None,
            row["traits"],
        )


@dataclass(frozen=True, slots=True)
class Account:
    """The company a person belongs to: its id, e-mail domain and what was said of it."""

    id: int
    domain: str | None
    traits: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Account:
        return cls(id=row["id"], domain=row["domain"], traits=row["traits"] or {})
