"""Persons as the write path reads them: typed :class:`~mqlengine.domain.person.Person`."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Select, select

from mqlengine.domain.person import PERSON_COLUMNS, Person
from mqlengine.store.repo import chunks
from mqlengine.store.tables import persons

_WITH_TRAITS = select(*(persons.c[name] for name in PERSON_COLUMNS))
_WITHOUT_TRAITS = select(*(persons.c[name] for name in PERSON_COLUMNS if name != "traits"))


def persons_by_id(
    connection: Connection, person_ids: Iterable[int], *, traits: bool = False
) -> dict[int, Person]:
    """The persons with these ids (those that exist). Traits, the widest column, are read
    only when asked for (else ``Person.traits`` is None)."""
    query: Select[tuple[object, ...]] = _WITH_TRAITS if traits else _WITHOUT_TRAITS
    found: dict[int, Person] = {}
    for part in chunks(sorted(set(person_ids))):
        for row in connection.execute(query.where(persons.c.id.in_(part))).mappings():
            found[row["id"]] = Person.from_row(row)
    return found
