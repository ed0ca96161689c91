from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from steward.protocol import CommandStatus
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.commands import approvals, service
from steward.server.commands.schemas import (
    CommandCreate,
    CommandCreated,
    CommandPublic,
    RiskAssessment,
)
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.errors import PermissionDenied

Viewer = Annotated[Principal, require(P.DEVICE_VIEW)]
Approver = Annotated[Principal, require(P.COMMAND_APPROVE)]

router = APIRouter(prefix="/api/v1", tags=["commands"])


@router.post("/devices/{device_id}/commands", response_model=CommandCreated, status_code=201)
async def create_command(
    device_id: uuid.UUID,
    body: CommandCreate,
    principal: Annotated[Principal, require(P.COMMAND_RUN)],
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> CommandCreated:
    """Run a command on a device. With `approval_required` in the user's scope it waits in
    `pending_approval` until someone else approves it."""
    try:
        command = await service.create_command(
            session, principal, device_id, body, runtime.settings.command_timeout_s
        )
    except PermissionDenied as exc:
        await session.rollback()  # free the connection for the audit record
        await auditor(
            "command.blocked",
            "blocked",
            risk="medium",
            target=f"device:{device_id}",
            device_id=device_id,
            detail={"type": str(body.type), "reason": exc.code, "message": exc.message},
        )
        raise
    await session.commit()  # committed before anyone is told
    await auditor(
        "command.submitted",
        target=f"command:{command.id}",
        device_id=device_id,
        risk="medium",
        detail={
            "type": command.type,
            "payload": command.payload,
            "status": command.status,
            "risk": command.risk,
            "risk_reasons": command.risk_reasons,
        },
    )
    if command.status == CommandStatus.QUEUED:
        await runtime.hub.notify_command(device_id)
    return CommandCreated(
        id=command.id,
        status=CommandStatus(command.status),
        risk=command.risk,
        risk_reasons=command.risk_reasons,
    )


@router.post("/commands/assess", response_model=RiskAssessment)
async def assess_command(
    body: CommandCreate,
    principal: Annotated[Principal, require(P.COMMAND_RUN)],
    session: SessionDep,
) -> RiskAssessment:
    """How risky a command looks (and whether it would wait for approval), without running it."""
    assessment, waits = await service.preview(session, principal, body)
    return RiskAssessment(
        risk=assessment.level.value, reasons=assessment.reasons, needs_approval=waits
    )


@router.get("/commands/{command_id}", response_model=CommandPublic)
async def get_command(
    command_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> CommandPublic:
    return await service.get_command(session, principal, command_id)


@router.get("/approvals", response_model=list[CommandPublic])
async def approvals_inbox(principal: Approver, session: SessionDep) -> list[CommandPublic]:
    """Commands waiting for your approval: not your own, on devices you reach, oldest first."""
    return [
        CommandPublic.model_validate(command, from_attributes=True)
        for command, _ in await service.waiting_for(session, principal)
    ]


@router.post("/commands/{command_id}/approve", response_model=CommandPublic)
async def approve_command(
    command_id: uuid.UUID,
    principal: Approver,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> CommandPublic:
    """Approve a command waiting for approval (never one's own)."""
    command = await approvals.decide(session, runtime, auditor, principal, command_id, approve=True)
    return CommandPublic.model_validate(command, from_attributes=True)


@router.post("/commands/{command_id}/deny", response_model=CommandPublic)
async def deny_command(
    command_id: uuid.UUID,
    principal: Approver,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> CommandPublic:
    command = await approvals.decide(
        session, runtime, auditor, principal, command_id, approve=False
    )
    return CommandPublic.model_validate(command, from_attributes=True)


@router.get("/devices/{device_id}/commands", response_model=list[CommandPublic])
async def list_device_commands(
    device_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> list[CommandPublic]:
    return await service.list_device_commands(session, principal, device_id)
