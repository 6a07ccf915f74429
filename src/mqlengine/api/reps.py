"""Teams and reps (the people routing chooses from), over the library in services/reps.

Reading needs the ``read`` scope; changes need ``admin`` and are kept in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mqlengine.api.auth import audit, require_scope
from mqlengine.api.contract import Moment, errors
from mqlengine.domain.bounds import INT_MAX
from mqlengine.services import reps as service
from mqlengine.services.keys import Principal
from mqlengine.wiring import Wiring

READ = [Depends(require_scope("read"))]
Admin = Annotated[Principal, Depends(require_scope("admin"))]
router = APIRouter(prefix="/v1", tags=["reps"], responses=errors(400, 401, 403, 404, 409))
Key = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)


# Lengths are those of the columns (store/tables_handoff.py).
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(max_length=255)]
Email = Annotated[str, StringConstraints(max_length=320)]
KeyPath = Annotated[str, Path(min_length=1, max_length=64)]
NamePath = Annotated[str, Path(min_length=1, max_length=64)]


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manager_name: Text | None = None
    manager_email: Email | None = None


class RepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: Name | None = None
    name: Text | None = None
    email: Email | None = None
    timezone: Name | None = None
    capacity_per_day: int | None = Field(default=None, ge=0, le=INT_MAX)
    working_hours: dict[str, list[str]] | None = None
    territories: list[str] | None = None
    active: bool | None = None


class AbsenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: Moment
    ends_at: Moment
    note: Text | None = None


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


@router.get("/teams", summary="Teams with their managers and rep counts", dependencies=READ)
def get_teams(request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return {"teams": service.list_teams(connection)}


@router.put("/teams/{name}", summary="Create or update a team")
def put_team(name: NamePath, body: TeamIn, request: Request, principal: Admin) -> dict[str, Any]:
    with _wiring(request).db.begin() as connection:
        team = service.upsert_team(
            connection,
            name,
            now=_wiring(request).clock(),
            manager_name=body.manager_name,
            manager_email=body.manager_email,
        )
        audit(
            request,
            connection,
            principal,
            "team.put",
            name,
            body.model_dump(mode="json", exclude_none=True),
        )
        return team


@router.get("/reps", summary="Reps with today's load and availability", dependencies=READ)
def get_reps(request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return {"reps": service.list_reps(connection, now=_wiring(request).clock())}


@router.get("/reps/{key}", summary="One rep", dependencies=READ)
def get_rep(key: KeyPath, request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return service.rep_detail(connection, key, now=_wiring(request).clock())


@router.put("/reps/{key}", summary="Create a rep (team required) or change fields of one")
def put_rep(key: KeyPath, body: RepIn, request: Request, principal: Admin) -> dict[str, Any]:
    with _wiring(request).db.begin() as connection:
        rep = service.upsert_rep(connection, key, now=_wiring(request).clock(), **body.model_dump())
        audit(
            request,
            connection,
            principal,
            "rep.put",
            key,
            body.model_dump(mode="json", exclude_none=True),
        )
        return rep


@router.post("/reps/{key}/absences", summary="Record an out-of-office period", status_code=201)
def post_absence(
    key: KeyPath, body: AbsenceIn, request: Request, principal: Admin
) -> dict[str, Any]:
    with _wiring(request).db.begin() as connection:
        absence = service.add_absence(
            connection, key, starts_at=body.starts_at, ends_at=body.ends_at, note=body.note
        )
        audit(
            request,
            connection,
            principal,
            "rep.absence",
            key,
            body.model_dump(mode="json", exclude_none=True),
        )
        return absence
