"""What `mql validate` checks against a database: names the definition reads that nothing
has ever sent, and routing teams that do not exist.

A trait or event name that neither the database (its most recent persons and events) nor
the definition's own tests have seen is almost certainly misspelt (``Demo Request`` for
``Demo Requested``, ``job_title`` for ``title``); a routing rule naming a team that is not
in the directory sends every lead it matches to the fallback queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from mqlengine.definition.compiler import LoadedDefinition, definition_names
from mqlengine.store.tables import events, persons
from mqlengine.store.tables_handoff import teams

RECENT_EVENTS = 100_000
RECENT_PERSONS = 2_000


def _paths(values: Mapping[str, Any], prefix: str = "", depth: int = 3) -> set[str]:
    """Every key of a profile, nested ones dotted (``company.employees``)."""
    found: set[str] = set()
    for key, value in values.items():
        name = f"{prefix}{key}"
        found.add(name)
        if isinstance(value, Mapping) and depth > 1:
            found |= _paths(value, f"{name}.", depth - 1)
    return found


def _seen_in_tests(loaded: LoadedDefinition) -> tuple[set[str], set[str]]:
    traits: set[str] = set()
    names: set[str] = set()
    for test in loaded.spec.tests:
        traits |= _paths(test.traits)
        names |= {event.event for event in test.events}
    return traits, names


def database_warnings(connection: Connection, loaded: LoadedDefinition) -> list[str]:
    """Warnings in ``file: warning: …`` form (empty when the database holds no persons:
    nothing can be judged yet)."""
    wanted_traits, wanted_events = definition_names(loaded.definition)
    profiles = connection.execute(
        select(persons.c.profile).order_by(persons.c.id.desc()).limit(RECENT_PERSONS)
    ).scalars()
    seen_traits: set[str] = set()
    any_person = False
    for profile in profiles:
        any_person = True
        seen_traits |= _paths(profile or {})
    recent = select(events.c.name).order_by(events.c.id.desc()).limit(RECENT_EVENTS).subquery()
    seen_events = set(connection.execute(select(recent.c.name).distinct()).scalars())
    test_traits, test_events = _seen_in_tests(loaded)
    found: list[str] = []
    where = f"{loaded.filename}: warning:"
    if any_person:
        for trait in sorted(wanted_traits - seen_traits - test_traits):
            found.append(
                f"{where} trait '{trait}' is in no recent person's profile nor in the tests "
                "(misspelt?)"
            )
    if seen_events:
        for name in sorted(wanted_events - seen_events - test_events):
            found.append(
                f"{where} event '{name}' is in no recent event nor in the tests (misspelt?)"
            )
    known_teams = set(connection.execute(select(teams.c.name)).scalars())
    routing = loaded.definition.routing
    if routing is not None and known_teams:
        for team in sorted({rule.team for rule in routing.rules} | {routing.fallback}):
            if team not in known_teams:
                found.append(
                    f"{where} routing team '{team}' does not exist "
                    f"(teams: {', '.join(sorted(known_teams))}; `mql reps team NAME` adds one)"
                )
    return found
