"""Teams and reps (the people routing chooses from), over the library in services/reps.

Reading needs the ``read`` scope; changes need ``admin`` and are kept in the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from mqlengine.api.auth import audit, require_scope
from mqlengine.services import reps as service
from mqlengine.services.keys import Principal
from mqlengine.wiring import Wiring

READ = [Depends(require_scope("read"))]
Admin = Annotated[Principal, Depends(require_scope("admin"))]
router = APIRouter(prefix="/v1", tags=["reps"])
Key = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manager_name: str | None = None
    manager_email: str | None = None


class RepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str | None = None
    name: str | None = None
    email: str | None = None
    timezone: str | None = None
    capacity_per_day: int | None = Field(default=None, ge=0)
    working_hours: dict[str, list[str]] | None = None
    territories: list[str] | None = None
    active: bool | None = None


class AbsenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    starts_at: datetime
    ends_at: datetime
    note: str | None = None


def _wiring(request: Request) -> Wiring:
    wiring: Wiring = request.app.state.wiring
    return wiring


@router.get("/teams", summary="Teams with their managers and rep counts", dependencies=READ)
def get_teams(request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return {"teams": service.list_teams(connection)}


@router.put("/teams/{name}", summary="Create or update a team")
def put_team(name: str, body: TeamIn, request: Request, principal: Admin) -> dict[str, Any]:
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
def get_rep(key: str, request: Request) -> dict[str, Any]:
    with _wiring(request).db.read() as connection:
        return service.rep_detail(connection, key, now=_wiring(request).clock())


@router.put("/reps/{key}", summary="Create a rep (team required) or change fields of one")
def put_rep(key: str, body: RepIn, request: Request, principal: Admin) -> dict[str, Any]:
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
def post_absence(key: str, body: AbsenceIn, request: Request, principal: Admin) -> dict[str, Any]:
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
