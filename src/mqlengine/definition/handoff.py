"""Compile the ``routing:`` and ``sla:`` sections into frozen domain objects.

Called by the main compiler with itself as ``compiler`` so problems are reported at the
right ``file:line:col`` like every other section.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mqlengine.definition.schema import CalendarSpec, DefinitionSpec
from mqlengine.domain.calendar import WEEKDAYS, BusinessCalendar, Interval, parse_hours
from mqlengine.domain.conditions import AllOf, AnyOf, Condition, Not, RuleEarned
from mqlengine.domain.routing import RoutingConfig, RoutingRule, Strategy
from mqlengine.domain.sla import Escalation, SlaConfig, SlaPolicy

if TYPE_CHECKING:
    from mqlengine.definition.yamlsource import Path

ALLOWED_SUBJECTS = {"trait", "rule", "fit_at_least", "intent_at_least", "total_at_least"}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
GROUPS = {"weekdays": WEEKDAYS[:5], "every_day": WEEKDAYS}


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 2h, 3d, 1w)")
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


def _rule_refs(condition: Condition) -> list[str]:
    if isinstance(condition, RuleEarned):
        return [condition.rule_id]
    if isinstance(condition, AllOf | AnyOf):
        return [ref for item in condition.items for ref in _rule_refs(item)]
    if isinstance(condition, Not):
        return _rule_refs(condition.item)
    return []


class _Target(Protocol):
    """The slice of the main compiler this module uses."""

    def condition(self, spec: Any, path: Path, allowed: set[str]) -> Condition: ...

    def error(self, path: Path, message: str) -> None: ...

    def warn(self, path: Path, message: str) -> None: ...


def _check_condition(
    compiler: _Target, spec: Any, path: Path, rule_ids: set[str]
) -> Condition | None:
    if spec is None:
        return None
    condition = compiler.condition(spec, path, ALLOWED_SUBJECTS)
    for ref in _rule_refs(condition):
        if ref not in rule_ids:
            compiler.error(path, f"refers to unknown rule '{ref}'")
    return condition


def _check_types(compiler: _Target, types: list[str], path: Path, known: set[str]) -> None:
    for i, name in enumerate(types):
        if name not in known:
            compiler.warn(
                (*path, i),
                f"'{name}' is not an MQL type of this definition ({', '.join(sorted(known))})",
            )


def compile_calendar(name: str, spec: CalendarSpec) -> BusinessCalendar:
    """Raises ValueError with a readable message."""
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{spec.timezone}' (use an IANA name)") from None
    days: dict[str, list[Interval]] = {d: [] for d in WEEKDAYS}
    for key, texts in spec.hours.items():
        for day in GROUPS.get(key, (key,)):
            days[day] = sorted(parse_hours(text) for text in texts)
    for day, intervals in days.items():
        for (_, end), (start, _) in itertools.pairwise(intervals):
            if start < end:
                raise ValueError(f"opening hours on {day} overlap")
    if not any(days.values()):
        raise ValueError("a calendar needs opening hours on at least one day")
    return BusinessCalendar(
        name, spec.timezone, tuple(tuple(days[d]) for d in WEEKDAYS), frozenset(spec.holidays)
    )


def compile_handoff(
    compiler: _Target, spec: DefinitionSpec, rule_ids: set[str], mql_types: set[str]
) -> tuple[RoutingConfig | None, SlaConfig | None]:
    routing = None
    if spec.routing is not None:
        rules: list[RoutingRule] = []
        seen: set[str] = set()
        for i, r in enumerate(spec.routing.rules):
            path: Path = ("routing", "rules", i)
            if r.id in seen:
                compiler.error((*path, "id"), f"duplicate routing rule id '{r.id}'")
            seen.add(r.id)
            _check_types(compiler, r.mql_types, (*path, "mql_types"), mql_types)
            when = _check_condition(compiler, r.when, (*path, "when"), rule_ids)
            rules.append(
                RoutingRule(
                    r.id,
                    r.team,
                    Strategy(r.strategy),
                    tuple(r.mql_types),
                    when,
                    r.account_owner,
                    r.territory,
                    r.require_on_shift,
                    r.description,
                )
            )
            if not r.mql_types and r.when is None and i < len(spec.routing.rules) - 1:
                compiler.warn((*path, "id"), "matches every MQL: the rules after it never apply")
        regions = {k: frozenset(v) for k, v in spec.routing.regions.items()}
        routing = RoutingConfig(tuple(rules), spec.routing.fallback, regions)

    sla = None
    if spec.sla is not None:
        calendars: dict[str, BusinessCalendar] = {}
        for name, cal in spec.sla.calendars.items():
            try:
                calendars[name] = compile_calendar(name, cal)
            except ValueError as error:
                compiler.error(("sla", "calendars", name), str(error))
        policies: list[SlaPolicy] = []
        seen_policies: set[str] = set()
        for i, p in enumerate(spec.sla.policies):
            path = ("sla", "policies", i)
            if p.id in seen_policies:
                compiler.error((*path, "id"), f"duplicate SLA policy id '{p.id}'")
            seen_policies.add(p.id)
            if p.calendar != "always" and p.calendar not in spec.sla.calendars:
                compiler.error(
                    (*path, "calendar"),
                    f"unknown calendar '{p.calendar}' "
                    "(define it under sla.calendars, or use 'always')",
                )
            _check_types(compiler, p.mql_types, (*path, "mql_types"), mql_types)
            when = _check_condition(compiler, p.when, (*path, "when"), rule_ids)
            within = parse_duration(p.first_touch_within)
            if within.total_seconds() <= 0:
                compiler.error((*path, "first_touch_within"), "must be longer than zero")
            policies.append(
                SlaPolicy(
                    p.id,
                    within,
                    p.calendar,
                    tuple(p.mql_types),
                    when,
                    tuple(Escalation(a) for a in dict.fromkeys(p.escalate)),
                    p.max_reassignments,
                )
            )
        sla = SlaConfig(tuple(policies), calendars)
    return routing, sla
