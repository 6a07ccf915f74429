"""The model registry in the store: versioned artifacts, their training facts, and which
one is live.

A trained model is registered as a ``candidate``. Promoting one makes it ``live`` and
retires the one that was; rolling back retires the live model and makes the previously
live one live again. At most one model is live at any time (each change runs in one
transaction, with the live row read first). Every function runs on the caller's
transaction, so an audit entry written beside it commits with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, update

from mqlengine.errors import ConflictError, NotFoundError
from mqlengine.store.tables_predict import models

if TYPE_CHECKING:
    from mqlengine.predict.modeling import FittedModel

STATUSES = ("candidate", "live", "retired")


@dataclass(frozen=True)
class ModelEntry:
    version: int
    kind: str
    status: str
    features: tuple[str, ...]
    metrics: dict[str, float]
    label: dict[str, Any]
    definition_version: str
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    positives: int
    fingerprint: str
    created_at: datetime
    created_by: str
    promoted_at: datetime | None
    retired_at: datetime | None
    reference: dict[str, Any]

    def to_dict(self, *, reference: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "kind": self.kind,
            "status": self.status,
            "features": list(self.features),
            "metrics": self.metrics,
            "label": self.label,
            "definition_version": self.definition_version,
            "window": {
                "start": _iso(self.window_start),
                "end": _iso(self.window_end),
            },
            "rows": self.rows,
            "positives": self.positives,
            "fingerprint": self.fingerprint,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "promoted_at": _iso(self.promoted_at),
            "retired_at": _iso(self.retired_at),
        }
        if reference:
            data["reference"] = self.reference
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_ENTRY_COLUMNS = [c for c in models.c if c.name != "artifact"]


def _entry(row: Any) -> ModelEntry:
    return ModelEntry(
        version=int(row.id),
        kind=row.kind,
        status=row.status,
        features=tuple(row.features),
        metrics=dict(row.metrics),
        label=dict(row.label),
        definition_version=row.definition_version,
        window_start=row.window_start,
        window_end=row.window_end,
        rows=int(row.rows),
        positives=int(row.positives),
        fingerprint=row.fingerprint,
        created_at=row.created_at,
        created_by=row.created_by,
        promoted_at=row.promoted_at,
        retired_at=row.retired_at,
        reference=dict(row.reference or {}),
    )


def register(
    connection: Connection,
    model: FittedModel,
    *,
    label: dict[str, Any],
    definition_version: str,
    window: tuple[datetime | None, datetime | None],
    rows: int,
    positives: int,
    fingerprint: str,
    reference: dict[str, Any],
    now: datetime,
    actor: str,
) -> ModelEntry:
    """Store a trained model as a new candidate version."""
    result = connection.execute(
        insert(models)
        .values(
            kind=model.kind,
            status="candidate",
            artifact=model.to_bytes(),
            features=list(model.features),
            metrics={k: float(v) for k, v in model.metrics.items()},
            label=label,
            definition_version=definition_version,
            window_start=window[0],
            window_end=window[1],
            rows=rows,
            positives=positives,
            fingerprint=fingerprint,
            reference=reference,
            created_at=now,
            created_by=actor,
        )
        .returning(models.c.id)
    )
    return get(connection, int(result.scalar_one()))


def get(connection: Connection, version: int) -> ModelEntry:
    row = connection.execute(select(*_ENTRY_COLUMNS).where(models.c.id == version)).first()
    if row is None:
        raise NotFoundError(f"no model version {version} (see `mql model list`)")
    return _entry(row)


def list_models(connection: Connection, *, status: str | None = None) -> list[ModelEntry]:
    query = select(*_ENTRY_COLUMNS).order_by(models.c.id.desc())
    if status is not None:
        query = query.where(models.c.status == status)
    return [_entry(row) for row in connection.execute(query)]


def live_version(connection: Connection) -> int | None:
    """The live model's version (one indexed read: the serving path asks every batch)."""
    found = connection.execute(
        select(models.c.id).where(models.c.status == "live").order_by(models.c.id.desc()).limit(1)
    ).scalar()
    return int(found) if found is not None else None


def newest_candidate(connection: Connection) -> int | None:
    found = connection.execute(
        select(func.max(models.c.id)).where(models.c.status == "candidate")
    ).scalar()
    return int(found) if found is not None else None


_LOADED: dict[tuple[str, int, str, str], FittedModel] = {}


def load(connection: Connection, version: int) -> FittedModel:
    """The model of a version (artifacts never change: kept in memory once read, by
    store, version, training fingerprint and creation time — one process may open several
    stores whose version numbers coincide)."""
    facts = connection.execute(
        select(models.c.fingerprint, models.c.created_at).where(models.c.id == version)
    ).first()
    if facts is None:
        raise NotFoundError(f"no model version {version} (see `mql model list`)")
    store = connection.engine.url.render_as_string(hide_password=True)
    key = (store, version, str(facts.fingerprint), str(facts.created_at))
    found = _LOADED.get(key)
    if found is None:
        from mqlengine.predict.modeling import FittedModel

        data = connection.execute(select(models.c.artifact).where(models.c.id == version)).scalar()
        if data is None:
            raise NotFoundError(f"no model version {version} (see `mql model list`)")
        if len(_LOADED) >= 8:
            _LOADED.clear()
        found = _LOADED[key] = FittedModel.from_bytes(bytes(data))
    return found


def promote(
    connection: Connection, version: int, *, now: datetime
) -> tuple[ModelEntry, int | None]:
    """Make ``version`` live, retiring the live one; returns it and the version retired."""
    target = get(connection, version)
    current = live_version(connection)
    if current == version:
        raise ConflictError(f"model version {version} is already live")
    if current is not None:
        connection.execute(
            update(models)
            .where(models.c.id == current, models.c.status == "live")
            .values(status="retired", retired_at=now)
        )
    connection.execute(
        update(models)
        .where(models.c.id == target.version)
        .values(status="live", promoted_at=now, retired_at=None)
    )
    return get(connection, version), current


def rollback(connection: Connection, *, now: datetime) -> tuple[int, ModelEntry]:
    """Retire the live model and make the one live before it live again."""
    current = live_version(connection)
    if current is None:
        raise ConflictError("no model is live: nothing to roll back")
    previous = connection.execute(
        select(models.c.id)
        .where(models.c.status == "retired", models.c.promoted_at.is_not(None))
        .order_by(models.c.promoted_at.desc(), models.c.id.desc())
        .limit(1)
    ).scalar()
    if previous is None:
        raise ConflictError(
            f"model version {current} is the first live model: nothing to roll back to "
            "(retire it with another promotion)"
        )
    connection.execute(
        update(models).where(models.c.id == current).values(status="retired", retired_at=now)
    )
    connection.execute(
        update(models)
        .where(models.c.id == previous)
        .values(status="live", promoted_at=now, retired_at=None)
    )
    return current, get(connection, int(previous))
