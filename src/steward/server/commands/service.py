"""Commands: create (committed before dispatch), decide, cancel, expire, history.

Operator-facing functions take a tenant-bound session; the agent-facing ones (commands/
delivery.py) are called by the gateway with a system session and are keyed by the device the
agent authenticated as, so an agent can only touch its own commands.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandStatus, CommandType
from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import authorize
from steward.server.accounts.service import Principal
from steward.server.commands.gate import TenantRules, Verdict, judge
from steward.server.commands.models import Command
from steward.server.commands.schemas import CommandCreate, CommandPublic, ScriptRequest
from steward.server.db.base import utcnow
from steward.server.devices.access import device_for, visible_devices
from steward.server.devices.models import Device
from steward.server.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from steward.server.jobs import lifecycle
from steward.server.jobs.models import Approval

S = CommandStatus
WAITING = (S.PENDING_APPROVAL, S.HELD, S.QUEUED)  # nothing has reached the agent yet
IN_FLIGHT = (S.QUEUED, S.SENT, S.RUNNING)


async def resolved_payload(
    session: AsyncSession, principal: Principal, command_type: CommandType, payload: dict[str, Any]
) -> dict[str, Any]:
    """What the agent will get: a script request becomes the exact text of its version."""
    if command_type is not CommandType.SCRIPT:
        return payload
    from steward.server.scripts.schemas import ScriptRunRequest
    from steward.server.scripts.service import resolve_script

    request = ScriptRequest.model_validate(payload)
    resolved = await resolve_script(
        session, principal, ScriptRunRequest.model_validate(request.model_dump())
    )
    return resolved.model_dump(mode="json")


@dataclass(frozen=True)
class Timing:
    timeout_s: float
    expires_at: datetime
    approval_expires_at: datetime | None


def timing(
    rules: TenantRules, verdict: Verdict, request: CommandCreate, default_timeout_s: float
) -> Timing:
    now = utcnow()
    expiry_s = request.expires_in_s or rules.security.command_expiry_h * 3600.0
    approval_deadline = None
    if verdict.approvals_needed:
        approval_deadline = now + timedelta(hours=rules.security.approval_expiry_h)
    return Timing(
        request.timeout_s or default_timeout_s, now + timedelta(seconds=expiry_s), approval_deadline
    )


async def create_command(
    session: AsyncSession,
    principal: Principal,
    device_id: uuid.UUID,
    request: CommandCreate,
    default_timeout_s: float,
) -> Command:
    """A command for a device the principal may run it on (role, scope, time window, command
    limits, policy rules); `pending_approval` when it must wait for approvers."""
    authorize(principal, Permission.COMMAND_RUN)  # the role first, as every path does
    device = await device_for(session, principal, Permission.COMMAND_RUN, device_id)
    payload = await resolved_payload(session, principal, request.type, request.payload)
    rules = await TenantRules.load(session, principal.tenant_id)
    verdict = judge(principal, rules, device, str(request.type), payload)
    when = timing(rules, verdict, request, default_timeout_s)
    status = S.PENDING_APPROVAL if verdict.approvals_needed else S.QUEUED
    command = Command(
        device_id=device.id,
        type=request.type,
        payload=payload,
        status=status,
        timeout_s=when.timeout_s,
        created_by=principal.email,
        risk=verdict.assessment.level.value,
        risk_reasons=verdict.assessment.reasons,
        approvals_needed=verdict.approvals_needed,
        expires_at=when.expires_at,
        approval_expires_at=when.approval_expires_at,
        stdout="",
        stderr="",
        error="",
    )
    session.add(command)
    await session.flush()
    await lifecycle.record(
        session,
        principal.tenant_id,
        [command.id],
        status,
        actor=principal.email,
        note=verdict.why_approval,
    )
    return command


async def preview(
    session: AsyncSession, principal: Principal, request: CommandCreate, device_id: uuid.UUID | None
) -> tuple[Verdict | None, str]:
    """(verdict, why it would be refused) for a command, without creating it. Without a
    device, the first device the principal reaches stands in (scope rules per device)."""
    authorize(principal, Permission.COMMAND_RUN)
    device: Device | None
    if device_id is not None:
        device = await device_for(session, principal, Permission.COMMAND_RUN, device_id)
    else:
        device = await session.scalar(select(Device).where(visible_devices(principal)).limit(1))
    try:
        payload = await resolved_payload(session, principal, request.type, request.payload)
    except (NotFound, Conflict, InvalidInput, ValueError) as exc:
        return None, str(getattr(exc, "message", exc))
    rules = await TenantRules.load(session, principal.tenant_id)
    if device is None:
        from steward.server.commands.gate import risk_of

        return Verdict(risk_of(str(request.type), payload), 0), ""
    try:
        return judge(principal, rules, device, str(request.type), payload), ""
    except (PermissionDenied, NotFound) as exc:
        return None, exc.message


async def command_for(
    session: AsyncSession,
    principal: Principal,
    command_id: uuid.UUID,
    permission: Permission = Permission.DEVICE_VIEW,
) -> Command:
    """The command, if the principal may do `permission` on its device (404 otherwise)."""
    command = await session.scalar(select(Command).where(Command.id == command_id))
    if command is None:
        raise NotFound("no such command", code="command_not_found")
    try:
        await device_for(session, principal, permission, command.device_id)
    except NotFound:
        raise NotFound("no such command", code="command_not_found") from None
    return command


async def get_command(
    session: AsyncSession, principal: Principal, command_id: uuid.UUID
) -> CommandPublic:
    command = await command_for(session, principal, command_id)
    return CommandPublic.model_validate(command, from_attributes=True)


async def approvals_of(
    session: AsyncSession, *, command_id: uuid.UUID | None = None, job_id: uuid.UUID | None = None
) -> list[Approval]:
    condition = Approval.command_id == command_id if command_id else Approval.job_id == job_id
    rows = await session.scalars(select(Approval).where(condition).order_by(Approval.at))
    return list(rows)


async def add_decision(
    session: AsyncSession,
    principal: Principal,
    *,
    created_by: str,
    status: str,
    approval_expires_at: datetime | None,
    approve: bool,
    comment: str,
    command_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
) -> int:
    """Store one approver's decision on a command or a job; the number of approvals so far.
    Nobody decides on their own request; nobody decides twice."""
    if created_by == principal.email:
        raise PermissionDenied("nobody may approve their own command", code="own_command")
    if status != S.PENDING_APPROVAL:
        raise Conflict(f"it is {status}, not waiting for approval", code="not_pending")
    if approval_expires_at is not None and approval_expires_at <= utcnow():
        raise Conflict("the time to decide has passed", code="approval_expired")
    earlier = await approvals_of(session, command_id=command_id, job_id=job_id)
    if any(a.approver == principal.email for a in earlier):
        raise Conflict("you have already decided on it", code="already_decided")
    session.add(
        Approval(
            command_id=command_id,
            job_id=job_id,
            approver=principal.email,
            decision="approve" if approve else "deny",
            comment=comment,
            at=utcnow(),
        )
    )
    return sum(1 for a in earlier if a.decision == "approve") + int(approve)


async def decide(
    session: AsyncSession,
    principal: Principal,
    command_id: uuid.UUID,
    *,
    approve: bool,
    comment: str = "",
) -> Command:
    """An approver's decision on a command waiting for one. Denied at the first deny; queued
    once it has the approvals it needs (two distinct people for high risk, if the tenant
    asks)."""
    command = await command_for(session, principal, command_id, Permission.COMMAND_APPROVE)
    if command.job_id is not None:
        raise Conflict("decide on its job instead", code="part_of_job")
    approvals = await add_decision(
        session,
        principal,
        created_by=command.created_by,
        status=command.status,
        approval_expires_at=command.approval_expires_at,
        approve=approve,
        comment=comment,
        command_id=command.id,
    )
    tenant = principal.tenant_id
    if not approve:
        command.status = S.DENIED
        command.finished_at = utcnow()
        command.error = f"denied by {principal.email}"[:255]
        await lifecycle.record(
            session, tenant, [command.id], S.DENIED, actor=principal.email, note=comment
        )
    elif approvals >= max(command.approvals_needed, 1):
        command.status = S.QUEUED
        await lifecycle.record(
            session, tenant, [command.id], S.APPROVED, actor=principal.email, note=comment
        )
        await lifecycle.record(session, tenant, [command.id], S.QUEUED, actor=principal.email)
    else:
        await lifecycle.record(
            session,
            tenant,
            [command.id],
            S.PENDING_APPROVAL,
            actor=principal.email,
            note=f"approval {approvals} of {command.approvals_needed}",
        )
    await session.flush()
    return command


async def cancel(session: AsyncSession, principal: Principal, command_id: uuid.UUID) -> bool:
    """Cancel a command: at once when it has not reached the agent; otherwise the agent is
    asked to kill it (True: tell the agent)."""
    command = await command_for(session, principal, command_id, Permission.COMMAND_RUN)
    if S(command.status).is_final:
        raise Conflict(f"the command is already {command.status}", code="already_finished")
    return await cancel_commands(session, principal.tenant_id, [command], actor=principal.email)


async def cancel_commands(
    session: AsyncSession, tenant_id: uuid.UUID, commands: list[Command], *, actor: str
) -> bool:
    """Cancel these (unfinished) commands; True when an agent may have some of them."""
    now = utcnow()
    waiting = [c for c in commands if c.status in WAITING]
    running = [c for c in commands if c.status in (S.SENT, S.RUNNING)]
    tell_agents = any(c.status in (S.QUEUED, S.SENT, S.RUNNING) for c in commands)
    for command in waiting:
        command.status = S.CANCELLED
        command.finished_at = now
        command.cancel_requested_at = now
        command.error = f"cancelled by {actor}"[:255]
    for command in running:
        command.cancel_requested_at = now
    await lifecycle.record(session, tenant_id, [c.id for c in waiting], S.CANCELLED, actor=actor)
    await lifecycle.record(
        session,
        tenant_id,
        [c.id for c in running],
        S.RUNNING,
        actor=actor,
        note="cancel requested: the agent stops it",
    )
    await session.flush()
    return tell_agents


async def expire_due(session: AsyncSession) -> set[uuid.UUID]:
    """Expire (all tenants; a system session) commands whose approval or delivery time has
    passed. Returns the jobs touched."""
    now = utcnow()
    rows = (
        await session.execute(
            select(Command.id, Command.tenant_id, Command.job_id, Command.status).where(
                (
                    (Command.status == S.PENDING_APPROVAL)
                    & (Command.job_id.is_(None))
                    & (Command.approval_expires_at < now)
                )
                | (Command.status.in_([S.QUEUED, S.HELD]) & (Command.expires_at < now))
            )
        )
    ).all()
    if not rows:
        return set()
    ids = [row.id for row in rows]
    for chunk in _chunks(ids, 500):
        await session.execute(
            update(Command)
            .where(Command.id.in_(chunk), Command.status.in_(list(WAITING)))
            .values(status=S.EXPIRED, finished_at=now, error="expired before it was delivered")
        )
    await lifecycle.record_many(
        session, [(row.tenant_id, row.id, S.EXPIRED) for row in rows], actor=lifecycle.SYSTEM
    )
    return {row.job_id for row in rows if row.job_id is not None}


def _chunks(items: list[uuid.UUID], size: int) -> list[list[uuid.UUID]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def list_device_commands(
    session: AsyncSession, principal: Principal, device_id: uuid.UUID, limit: int = 20
) -> list[CommandPublic]:
    await device_for(session, principal, Permission.DEVICE_VIEW, device_id)
    rows = await session.scalars(
        select(Command)
        .where(Command.device_id == device_id)
        .order_by(Command.created_at.desc())
        .limit(limit)
    )
    return [CommandPublic.model_validate(c, from_attributes=True) for c in rows]


async def count_by_status(session: AsyncSession, job_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(Command.status, func.count())
        .where(Command.job_id == job_id)
        .group_by(Command.status)
    )
    return {status: count for status, count in rows.all()}


async def waiting_for(
    session: AsyncSession, principal: Principal, limit: int = 200
) -> list[tuple[Command, str]]:
    """Single commands the principal may decide on (waiting, on devices in their scope, not
    their own), oldest first, with the device's hostname. Jobs are decided as a whole."""
    rows = await session.execute(
        select(Command, Device.hostname)
        .join(Device, Device.id == Command.device_id)
        .where(
            Command.status == S.PENDING_APPROVAL,
            Command.job_id.is_(None),
            Command.created_by != principal.email,
            visible_devices(principal),
        )
        .order_by(Command.created_at)
        .limit(limit)
    )
    return [(command, hostname) for command, hostname in rows.all()]
