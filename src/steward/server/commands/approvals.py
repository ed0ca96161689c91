"""Deciding on a command that waits for approval: the same rules from the API and the console
(never one's own, fresh MFA where the tenant asks, every decision audited)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.principal import Principal
from steward.server.audit.auditor import Auditor
from steward.server.commands import service
from steward.server.commands.models import Command
from steward.server.deps import check_step_up
from steward.server.errors import PermissionDenied
from steward.server.runtime import Runtime
from steward.server.tenancy.service import get_tenant


async def decide(
    session: AsyncSession,
    runtime: Runtime,
    auditor: Auditor,
    principal: Principal,
    command_id: uuid.UUID,
    *,
    approve: bool,
) -> Command:
    """Approve (it is queued and the agent told) or deny. Approving is treated as a high-risk
    act: a fresh second factor where the tenant's step-up setting asks for one."""
    action = "command.approved" if approve else "command.denied"
    try:
        check_step_up(principal, (await get_tenant(session, principal.tenant_id)).settings)
        command = await service.decide(session, principal, command_id, approve=approve)
    except PermissionDenied as exc:
        await session.rollback()  # free the connection for the audit record
        await auditor(
            action,
            "blocked",
            risk="high",
            target=f"command:{command_id}",
            detail={"reason": exc.code},
        )
        raise
    await session.commit()
    await auditor(
        action, target=f"command:{command.id}", device_id=command.device_id, risk="medium"
    )
    if approve:
        await runtime.hub.notify_command(command.device_id)
    return command
