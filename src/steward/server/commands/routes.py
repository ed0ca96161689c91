from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy import select

from steward.protocol import CommandStatus
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.commands import approvals, service
from steward.server.commands.gate import Blocked
from steward.server.commands.models import Command
from steward.server.commands.schemas import (
    ApprovalPublic,
    CommandCreate,
    CommandCreated,
    CommandDetail,
    CommandPublic,
    CommandSummary,
    Decision,
    RiskAssessment,
    TransitionPublic,
)
from steward.server.commands.summary import summarise
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.devices.access import visible_devices
from steward.server.devices.models import Device
from steward.server.errors import PermissionDenied
from steward.server.jobs import lifecycle

Viewer = Annotated[Principal, require(P.DEVICE_VIEW)]
Approver = Annotated[Principal, require(P.COMMAND_APPROVE)]
DecisionBody = Annotated[Decision | None, Body()]

router = APIRouter(prefix="/api/v1", tags=["commands"])


@router.post("/devices/{device_id}/commands", response_model=CommandCreated, status_code=201)
async def create_command(
    device_id: uuid.UUID,
    body: CommandCreate,
    principal: Annotated[Principal, require(P.COMMAND_RUN)],
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
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
            detail={
                "type": str(body.type),
                "payload": body.payload,
                "reason": exc.code,
                "rule": exc.rule_id if isinstance(exc, Blocked) else None,
                "message": exc.message,
            },
        )
        raise
    await session.commit()  # committed before anyone is told
    if runtime.settings.timing_headers:  # for the benchmark's commit -> receipt figure
        response.headers["X-Steward-Committed-At"] = f"{time.time():.6f}"
    if command.status == CommandStatus.QUEUED:
        await runtime.hub.deliver([command])  # first, then the audit record
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
    return CommandCreated(
        id=command.id,
        status=CommandStatus(command.status),
        risk=command.risk,
        risk_reasons=command.risk_reasons,
        approvals_needed=command.approvals_needed,
    )


@router.post("/commands/assess", response_model=RiskAssessment)
async def assess_command(
    body: CommandCreate,
    principal: Annotated[Principal, require(P.COMMAND_RUN)],
    session: SessionDep,
    device_id: Annotated[uuid.UUID | None, Query()] = None,
) -> RiskAssessment:
    """How risky a command looks, whether it would wait for approval (and for how many
    approvers) or be refused, without running it (for a device, or the first you reach)."""
    verdict, refused = await service.preview(session, principal, body, device_id)
    if verdict is None:
        return RiskAssessment(
            risk="low", reasons=[], needs_approval=False, blocked=True, blocked_reason=refused
        )
    return RiskAssessment(
        risk=verdict.assessment.level.value,
        reasons=verdict.assessment.reasons,
        needs_approval=bool(verdict.approvals_needed),
        approvals_needed=verdict.approvals_needed,
    )


@router.get("/commands", response_model=list[CommandSummary])
async def command_history(
    principal: Viewer,
    session: SessionDep,
    device_id: Annotated[uuid.UUID | None, Query()] = None,
    job_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[CommandStatus | None, Query()] = None,
    type: Annotated[str | None, Query(max_length=32)] = None,
    created_by: Annotated[str | None, Query(max_length=254)] = None,
    since: Annotated[datetime | None, Query()] = None,
    before: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[uuid.UUID | None, Query()] = None,
) -> list[CommandSummary]:
    """Commands on devices you reach, newest first, filtered; page with `before` and
    `before_id` (the `created_at` and `id` of the last row: a job's commands share a time)."""
    query = (
        select(Command, Device.hostname)
        .join(Device, Device.id == Command.device_id)
        .where(visible_devices(principal))
        .order_by(Command.created_at.desc(), Command.id.desc())
        .limit(limit)
    )
    filters = {
        Command.device_id: device_id,
        Command.job_id: job_id,
        Command.status: status,
        Command.type: type,
        Command.created_by: created_by,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(Command.created_at >= since)
    if before is not None and before_id is not None:
        query = query.where(
            (Command.created_at < before)
            | ((Command.created_at == before) & (Command.id < before_id))
        )
    elif before is not None:
        query = query.where(Command.created_at < before)
    rows = await session.execute(query)
    return [
        CommandSummary.of(command, hostname, summarise(command.type, command.payload))
        for command, hostname in rows.all()
    ]


@router.post("/commands/{command_id}/cancel", response_model=CommandPublic)
async def cancel_command(
    command_id: uuid.UUID,
    principal: Annotated[Principal, require(P.COMMAND_RUN)],
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> CommandPublic:
    """Withdraw a command not yet delivered; ask the agent to kill one that runs (the result
    then says `cancelled`)."""
    tell_agent = await service.cancel(session, principal, command_id)
    command = await service.command_for(session, principal, command_id)
    await session.commit()
    await auditor(
        "command.cancelled",
        target=f"command:{command_id}",
        device_id=command.device_id,
        risk="medium",
        detail={"status": command.status},
    )
    if tell_agent:
        await runtime.hub.notify_cancel(command.device_id)
    if CommandStatus(command.status).is_final:  # live viewers learn at once
        await runtime.hub.output.finished(
            str(command.id), status=command.status, error=command.error
        )
    return CommandPublic.model_validate(command, from_attributes=True)


@router.get("/commands/{command_id}", response_model=CommandDetail)
async def get_command(
    command_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> CommandDetail:
    """The command with its output, the history of its states and its approvals."""
    command = await service.command_for(session, principal, command_id)
    transitions = await lifecycle.history(session, command.id)
    decisions = await service.approvals_of(session, command_id=command.id)
    return CommandDetail.model_validate(command, from_attributes=True).model_copy(
        update={
            "transitions": [
                TransitionPublic.model_validate(t, from_attributes=True) for t in transitions
            ],
            "approvals": [
                ApprovalPublic.model_validate(a, from_attributes=True) for a in decisions
            ],
        }
    )


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
    body: DecisionBody = None,
) -> CommandPublic:
    """Approve a command waiting for approval (never one's own), with an optional comment."""
    command = await approvals.decide(
        session, runtime, auditor, principal, command_id, approve=True,
        comment=body.comment if body else "",
    )  # fmt: skip
    return CommandPublic.model_validate(command, from_attributes=True)


@router.post("/commands/{command_id}/deny", response_model=CommandPublic)
async def deny_command(
    command_id: uuid.UUID,
    principal: Approver,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: DecisionBody = None,
) -> CommandPublic:
    command = await approvals.decide(
        session, runtime, auditor, principal, command_id, approve=False,
        comment=body.comment if body else "",
    )  # fmt: skip
    return CommandPublic.model_validate(command, from_attributes=True)


@router.get("/devices/{device_id}/commands", response_model=list[CommandPublic])
async def list_device_commands(
    device_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> list[CommandPublic]:
    return await service.list_device_commands(session, principal, device_id)
