"""The definition's lifecycle: apply a new version (validated and tested), list, show, diff
and roll back the stored versions.

How the file and the store relate: until a version is applied, the definition in force is
``mql.yaml`` (registered as a version when it changes, as it always was). Once ``mql
definition apply`` (or ``rollback``) has made a version live, the store decides: every
command uses the live version, and a ``mql.yaml`` that differs from it only earns a
warning (see :func:`drift_warning`) until it is previewed and applied.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mqlengine.definition.compiler import LoadedDefinition, parse_definition
from mqlengine.definition.testing import TestResult, run_tests
from mqlengine.domain.rules import Definition
from mqlengine.errors import ConflictError, DefinitionError, NotFoundError
from mqlengine.services.audit import record_audit
from mqlengine.store import repo


def run_definition_tests(loaded: LoadedDefinition, now: datetime) -> list[TestResult]:
    """The definition's own example tests, with the ingest profile builder."""
    from mqlengine.ingest.profile import build_profile

    return run_tests(loaded, now, lambda traits: build_profile(traits))


def require_passing(loaded: LoadedDefinition, results: list[TestResult]) -> None:
    """Refuse a definition whose example tests fail, naming each failure."""
    failed = [r for r in results if not r.passed]
    if failed:
        lines = [f"{loaded.filename}: test {r.name!r}: {f}" for r in failed for f in r.failures]
        raise DefinitionError(
            f"{len(failed)} of {len(results)} definition test(s) fail: "
            f"{loaded.definition.version} is not applied",
            diagnostics=lines,
        )


def stored(connection: Connection, version: str) -> LoadedDefinition:
    """A stored version, parsed; NotFoundError naming the versions there are."""
    row = repo.definition_version(connection, version)
    if row is None:
        known = ", ".join(r["version"] for r in repo.definition_versions_listed(connection))
        raise NotFoundError(f"no stored definition version '{version}' (stored: {known or 'none'})")
    return parse_definition(row["content"], f"<stored {version}>")


def live(connection: Connection) -> LoadedDefinition | None:
    row = repo.active_definition(connection)
    if row is None:
        return None
    return parse_definition(row["content"], f"<stored {row['version']}>")


def apply_version(
    connection: Connection,
    loaded: LoadedDefinition,
    *,
    author: str,
    message: str | None,
    now: datetime,
    actor: str | None = None,
) -> dict[str, Any]:
    """Store ``loaded`` (content, hash, author, message, time) and make it live, with an
    audit entry, on the caller's transaction. A changed definition needs a new
    ``version:``; applying the live version again is a conflict."""
    d = loaded.definition
    check_storable(connection, loaded)
    current = repo.active_definition(connection)
    previous = None if current is None else current["version"]
    _, conflict = repo.save_definition(
        connection,
        version=d.version,
        content_hash=d.content_hash,
        content=loaded.text,
        description=d.description,
        now=now,
        activate=False,
    )
    if conflict:
        raise DefinitionError(conflict, diagnostics=[f"{loaded.filename}:1:1: {conflict}"])
    repo.mark_applied(connection, d.version, now=now, author=author, message=message or "")
    record_audit(
        connection,
        actor=actor or author,
        key_id=None,
        action="definition.apply",
        target=f"definition:{d.version}",
        details={"previous": previous, "hash": d.content_hash, "message": message or ""},
        at=now,
    )
    return {"version": d.version, "previous": previous, "hash": d.content_hash}


def check_storable(connection: Connection, loaded: LoadedDefinition) -> None:
    """Refuse, before any preview, what apply would refuse: a version name stored with
    other content, or the version that is live already."""
    d = loaded.definition
    row = repo.definition_version(connection, d.version)
    if row is not None and row["content_hash"] != d.content_hash:
        message = (
            f"definition version '{d.version}' is already stored with different content; "
            "give the changed definition a new `version:`"
        )
        raise DefinitionError(message, diagnostics=[f"{loaded.filename}:1:1: {message}"])
    current = repo.active_definition(connection)
    if (
        current is not None
        and current["content_hash"] == d.content_hash
        and repo.definitions_applied(connection)
    ):
        raise ConflictError(f"{d.version} is already the live version: nothing to apply")


def rollback(connection: Connection, version: str, *, actor: str, now: datetime) -> dict[str, Any]:
    """Make a stored version live again (audited)."""
    target = stored(connection, version)
    current = repo.active_definition(connection)
    if current is not None and current["version"] == version:
        raise ConflictError(f"{version} is already the live version")
    repo.mark_applied(connection, version, now=now)
    previous = None if current is None else current["version"]
    record_audit(
        connection,
        actor=actor,
        key_id=None,
        action="definition.rollback",
        target=f"definition:{version}",
        details={"previous": previous, "hash": target.definition.content_hash},
        at=now,
    )
    return {"version": version, "previous": previous}


def list_versions(connection: Connection) -> list[dict[str, Any]]:
    """Every stored version, newest first: live flag, author, message, times, hash."""
    rows = repo.definition_versions_listed(connection)
    return [
        {
            "version": r["version"],
            "live": bool(r["active"]),
            "author": r["author"],
            "message": r["message"],
            "description": r["description"],
            "created_at": r["created_at"],
            "activated_at": r["activated_at"],
            "applied_at": r["applied_at"],
            "hash": r["content_hash"],
        }
        for r in reversed(rows)
    ]


def show_version(connection: Connection, version: str) -> dict[str, Any]:
    row = repo.definition_version(connection, version)
    if row is None:
        stored(connection, version)  # raises the error naming what is stored
    assert row is not None
    return {
        **next(v for v in list_versions(connection) if v["version"] == version),
        "content": row["content"],
    }


def drift_warning(connection: Connection, file: LoadedDefinition) -> str | None:
    """Once versions are applied: the warning for a file that differs from the live
    version (None when it matches, or when apply has never been used)."""
    if not repo.definitions_applied(connection):
        return None
    current = repo.active_definition(connection)
    if current is None or current["content_hash"] == file.definition.content_hash:
        return None
    return (
        f"{file.filename} differs from live version {current['version']}: "
        f"preview and apply it with `mql definition apply {file.filename}`"
    )


# -- diff --------------------------------------------------------------------------------


@dataclass
class DefinitionDiff:
    before: str
    after: str
    unified: str
    changes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "changes": self.changes,
            "unified": self.unified,
        }


def _change(what: str, change: str, before: Any, after: Any) -> dict[str, Any]:
    return {"what": what, "change": change, "before": before, "after": after}


def semantic_changes(before: Definition, after: Definition) -> list[dict[str, Any]]:
    """Rules added, removed, re-weighted or otherwise changed; gates added or removed; the
    qualification settings (threshold, min fit, hysteresis, cool-down, caps) changed."""
    out: list[dict[str, Any]] = []
    for kind, old_rules, new_rules in (
        ("fit rule", before.fit_rules, after.fit_rules),
        ("intent rule", before.intent_rules, after.intent_rules),
    ):
        old = {r.id: r for r in old_rules}
        new = {r.id: r for r in new_rules}
        for rule_id in sorted(set(old) | set(new)):
            a, b = old.get(rule_id), new.get(rule_id)
            if a is None and b is not None:
                out.append(_change(f"{kind} {rule_id}", "added", None, b.points))
            elif b is None and a is not None:
                out.append(_change(f"{kind} {rule_id}", "removed", a.points, None))
            elif a is not None and b is not None:
                if a.points != b.points:
                    out.append(_change(f"{kind} {rule_id}", "points", a.points, b.points))
                if _fields(a, skip=("points", "description")) != _fields(
                    b, skip=("points", "description")
                ):
                    out.append(_change(f"{kind} {rule_id}", "condition or options", None, None))
    for kind, old_gates, new_gates in (
        ("exclusion", before.exclusions, after.exclusions),
        ("requirement", before.requirements, after.requirements),
    ):
        old_g = {g.id: g for g in old_gates}
        new_g = {g.id: g for g in new_gates}
        for gate_id in sorted(set(old_g) | set(new_g)):
            if gate_id not in old_g:
                out.append(_change(f"{kind} {gate_id}", "added", None, None))
            elif gate_id not in new_g:
                out.append(_change(f"{kind} {gate_id}", "removed", None, None))
            elif old_g[gate_id].when != new_g[gate_id].when:
                out.append(_change(f"{kind} {gate_id}", "condition", None, None))
    for name in ("threshold", "min_fit", "hysteresis", "total_cap", "recycle_cooldown_days"):
        a_value, b_value = getattr(before.qualify, name), getattr(after.qualify, name)
        if a_value != b_value:
            out.append(_change(name, name, a_value, b_value))
    old_paths = {p.type: p for p in before.qualify.paths}
    new_paths = {p.type: p for p in after.qualify.paths}
    for path in sorted(set(old_paths) | set(new_paths)):
        if path not in old_paths:
            out.append(_change(f"path {path}", "added", None, None))
        elif path not in new_paths:
            out.append(_change(f"path {path}", "removed", None, None))
        elif old_paths[path] != new_paths[path]:
            out.append(_change(f"path {path}", "condition", None, None))
    for name in ("half_life_days", "fit_cap", "intent_cap"):
        a_value, b_value = getattr(before, name), getattr(after, name)
        if a_value != b_value:
            out.append(_change(name, name, a_value, b_value))
    return out


def _fields(rule: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in rule.__slots__ if name not in skip}


def diff(before: LoadedDefinition, after: LoadedDefinition) -> DefinitionDiff:
    """A unified diff of the YAML plus the semantic summary."""
    a, b = before.definition.version, after.definition.version
    unified = "".join(
        difflib.unified_diff(
            before.text.splitlines(keepends=True),
            after.text.splitlines(keepends=True),
            fromfile=a,
            tofile=b,
        )
    )
    return DefinitionDiff(a, b, unified, semantic_changes(before.definition, after.definition))


def describe_change(change: dict[str, Any]) -> str:
    """One change as a line: ``fit rule title_vp: points 20 → 25``."""
    what, kind, before, after = change["what"], change["change"], change["before"], change["after"]
    if kind == "added":
        return f"{what}: added" + ("" if after is None else f" ({after:+g} points)")
    if kind == "removed":
        return f"{what}: removed" + ("" if before is None else f" (was {before:+g} points)")
    if before is None and after is None:
        return f"{what}: {kind} changed"
    return f"{what}: {_value(before)} → {_value(after)}"


def _value(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, int | float) else str(value)
