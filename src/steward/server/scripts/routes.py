"""The script library's API: read with `command.run`, change with `device.manage`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from steward.protocol.payloads import ScriptPayload
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.deps import AuditorDep, SessionDep, require
from steward.server.scripts import actions, service
from steward.server.scripts.schemas import (
    ScriptCreate,
    ScriptDetail,
    ScriptResolve,
    ScriptRunRequest,
    ScriptSummary,
    ScriptUpdate,
    ScriptVersionCreate,
    ScriptVersionPublic,
)

Reader = Annotated[Principal, require(P.COMMAND_RUN)]
Writer = Annotated[Principal, require(P.DEVICE_MANAGE)]

router = APIRouter(prefix="/api/v1", tags=["scripts"])


@router.get("/scripts", response_model=list[ScriptSummary])
async def list_scripts(
    principal: Reader,
    session: SessionDep,
    include_archived: Annotated[bool, Query()] = False,
) -> list[ScriptSummary]:
    scripts = await service.list_scripts(session, principal, include_archived=include_archived)
    return [ScriptSummary.model_validate(s) for s in scripts]


@router.post("/scripts", response_model=ScriptDetail, status_code=201)
async def create_script(
    body: ScriptCreate, principal: Writer, auditor: AuditorDep, session: SessionDep
) -> ScriptDetail:
    script, _ = await actions.create(session, auditor, principal, body)
    return await service.script_detail(session, principal, script.id)


@router.get("/scripts/{script_id}", response_model=ScriptDetail)
async def get_script(script_id: uuid.UUID, principal: Reader, session: SessionDep) -> ScriptDetail:
    """The script, its latest version in full, and the list of its versions (newest first)."""
    return await service.script_detail(session, principal, script_id)


@router.get("/scripts/{script_id}/versions/{version}", response_model=ScriptVersionPublic)
async def get_version(
    script_id: uuid.UUID, version: int, principal: Reader, session: SessionDep
) -> ScriptVersionPublic:
    _, row = await service.get_version(session, principal, script_id, version)
    return service.version_public(row)


@router.post("/scripts/{script_id}/versions", response_model=ScriptVersionPublic, status_code=201)
async def add_version(
    script_id: uuid.UUID,
    body: ScriptVersionCreate,
    principal: Writer,
    auditor: AuditorDep,
    session: SessionDep,
) -> ScriptVersionPublic:
    """Save a new version (N+1); earlier versions never change."""
    _, row = await actions.add_version(session, auditor, principal, script_id, body)
    return service.version_public(row)


@router.patch("/scripts/{script_id}", response_model=ScriptSummary)
async def update_script(
    script_id: uuid.UUID,
    body: ScriptUpdate,
    principal: Writer,
    auditor: AuditorDep,
    session: SessionDep,
) -> ScriptSummary:
    script = await actions.update(session, auditor, principal, script_id, body)
    return ScriptSummary.model_validate(script)


@router.post("/scripts/{script_id}/resolve", response_model=ScriptPayload)
async def resolve_script(
    script_id: uuid.UUID, body: ScriptResolve, principal: Reader, session: SessionDep
) -> ScriptPayload:
    """What an agent would be sent for these parameters (the composer's preview). Runs nothing."""
    request = ScriptRunRequest(script_id=script_id, version=body.version, params=body.params)
    return await service.resolve_script(session, principal, request)
