"""Commands: create (committed before dispatch), state transitions, results.

Operator-facing functions take a tenant-bound session; the agent-facing ones (`pending_for`,
`mark_*`, `record_result`) are called by the gateway with a system session and are keyed by the
device the agent authenticated as, so an agent can only touch its own commands.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandDispatch, CommandResult, CommandStatus, CommandType
from steward.server.accounts.permissions import Permission
from steward.server.accounts.policy import security_settings
from steward.server.accounts.principal import authorize
from steward.server.accounts.service import Principal
from steward.server.commands.models import Command
from steward.server.commands.risk import Assessment, Risk, assess
from steward.server.commands.schemas import CommandCreate, CommandPublic
from steward.server.db.base import utcnow
from steward.server.devices.access import device_for, visible_devices
from steward.server.devices.models import Device
from steward.server.errors import Conflict, NotFound, PermissionDenied
from steward.server.tenancy.models import Tenant

_IN_FLIGHT = (CommandStatus.QUEUED, CommandStatus.SENT, CommandStatus.RUNNING)


async def create_command(
    session: AsyncSession,
    principal: Principal,
    device_id: uuid.UUID,
    request: CommandCreate,
    default_timeout_s: float,
) -> Command:
    """A command for a device the principal may run it on (role, scope, time window, command
    limits); `pending_approval` when the user's scope requires approval."""
    authorize(principal, Permission.COMMAND_RUN)  # the role first, as every path does
    device = await device_for(session, principal, Permission.COMMAND_RUN, device_id)
    payload = request.payload.model_dump(exclude_none=True)
    decision = authorize(
        principal,
        Permission.COMMAND_RUN,
        device=device,
        command_type=str(request.type),
        command_payload=payload,
    )
    assessment = assess(str(request.type), payload)
    waits = decision.needs_approval or await _high_risk_waits(session, principal, assessment)
    status = CommandStatus.PENDING_APPROVAL if waits else CommandStatus.QUEUED
    command = Command(
        device_id=device.id,
        type=request.type,
        payload=payload,
        status=status,
        timeout_s=request.timeout_s or default_timeout_s,
        created_by=principal.email,
        risk=assessment.level.value,
        risk_reasons=assessment.reasons,
        stdout="",
        stderr="",
        error="",
    )
    session.add(command)
    await session.flush()
    return command


async def _high_risk_waits(
    session: AsyncSession, principal: Principal, assessment: Assessment
) -> bool:
    """High-risk commands wait for approval unless the tenant turned that off."""
    if assessment.level is not Risk.HIGH:
        return False
    tenant = await session.get(Tenant, principal.tenant_id)
    return tenant is not None and security_settings(tenant.settings).approval_for_high_risk


async def preview(
    session: AsyncSession, principal: Principal, request: CommandCreate
) -> tuple[Assessment, bool]:
    """The risk of a command and whether it would wait for approval, without creating it."""
    assessment = assess(str(request.type), request.payload.model_dump(exclude_none=True))
    waits = principal.scope.approval_required or await _high_risk_waits(
        session, principal, assessment
    )
    return assessment, waits


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


async def decide(
    session: AsyncSession, principal: Principal, command_id: uuid.UUID, *, approve: bool
) -> Command:
    """An approver's decision on a command waiting for one. Nobody approves their own."""
    command = await command_for(session, principal, command_id, Permission.COMMAND_APPROVE)
    if command.created_by == principal.email:
        raise PermissionDenied("nobody may approve their own command", code="own_command")
    if command.status != CommandStatus.PENDING_APPROVAL:
        raise Conflict(f"the command is {command.status}, not waiting", code="not_pending")
    command.status = CommandStatus.QUEUED if approve else CommandStatus.DENIED
    if not approve:
        command.finished_at = utcnow()
        command.error = f"denied by {principal.email}"[:255]
    await session.flush()
    return command


async def waiting_for(
    session: AsyncSession, principal: Principal, limit: int = 200
) -> list[tuple[Command, str]]:
    """Commands the principal may decide on (waiting, on devices in their scope, not their
    own), oldest first, with the device's hostname."""
    rows = await session.execute(
        select(Command, Device.hostname)
        .join(Device, Device.id == Command.device_id)
        .where(
            Command.status == CommandStatus.PENDING_APPROVAL,
            Command.created_by != principal.email,
            visible_devices(principal),
        )
        .order_by(Command.created_at)
        .limit(limit)
    )
    return [(command, hostname) for command, hostname in rows.all()]


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


def to_dispatch(command: Command) -> CommandDispatch:
    return CommandDispatch(
        command_id=str(command.id),
        command_type=CommandType(command.type),
        payload=command.payload,
        timeout_s=command.timeout_s,
    )


async def pending_for(
    session: AsyncSession, device_id: uuid.UUID, *, resend_after_s: float | None = None
) -> Sequence[Command]:
    """Commands the agent should have. With `resend_after_s`, sent/running ones are included
    only when they were sent that long ago (a poll answer may have been lost); without it, all
    unfinished ones are (a new connection: the agent's ledger drops what it already ran)."""
    condition = Command.status == CommandStatus.QUEUED
    if resend_after_s is None:
        condition = Command.status.in_(list(_IN_FLIGHT))
    else:
        stale = utcnow() - timedelta(seconds=resend_after_s)
        condition = or_(
            condition,
            Command.status.in_([CommandStatus.SENT, CommandStatus.RUNNING])
            & (Command.sent_at < stale),
        )
    rows = await session.scalars(
        select(Command)
        .where(Command.device_id == device_id, condition)
        .order_by(Command.created_at)
    )
    return rows.all()


async def mark_sent(session: AsyncSession, device_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
    if not ids:
        return
    await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id.in_(list(ids)),
            Command.status.in_(list(_IN_FLIGHT)),
        )
        .values(
            # a re-sent command that is already running stays running
            status=case(
                (Command.status == CommandStatus.RUNNING, CommandStatus.RUNNING.value),
                else_=CommandStatus.SENT.value,
            ),
            sent_at=utcnow(),
        )
    )


async def mark_running(session: AsyncSession, device_id: uuid.UUID, command_id: str) -> None:
    parsed = _parse_id(command_id)
    if parsed is None:
        return
    await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id == parsed,
            Command.status.in_([CommandStatus.QUEUED, CommandStatus.SENT]),
        )
        .values(status=CommandStatus.RUNNING, started_at=utcnow())
    )


async def record_result(session: AsyncSession, device_id: uuid.UUID, result: CommandResult) -> bool:
    """Store a final result once; a repeated result for the same command changes nothing."""
    parsed = _parse_id(result.command_id)
    if parsed is None:
        return False
    outcome = await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id == parsed,
            Command.status.in_(list(_IN_FLIGHT)),
        )
        .values(
            status=result.status,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            stdout_truncated=result.stdout_truncated,
            stderr_truncated=result.stderr_truncated,
            error=result.error,
            finished_at=utcnow(),
        )
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


def _parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
