"""Deciding on a command or a job that waits for approval: the same rules from the API and the
console (never one's own, fresh MFA where the tenant asks, every decision audited)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandStatus
from steward.server.accounts.principal import Principal
from steward.server.audit.auditor import Auditor
from steward.server.commands import service
from steward.server.commands.models import Command
from steward.server.deps import check_step_up
from steward.server.errors import Conflict, PermissionDenied
from steward.server.jobs import service as jobs
from steward.server.jobs.models import Job
from steward.server.jobs.schemas import JobStatus
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
    comment: str = "",
) -> Command:
    """Approve (queued and the agent told, once it has all the approvals it needs) or deny.
    Approving is a high-risk act: a fresh second factor where the tenant's step-up setting
    asks for one."""
    action = "command.approved" if approve else "command.denied"
    try:
        check_step_up(principal, (await get_tenant(session, principal.tenant_id)).settings)
        command = await service.decide(
            session, principal, command_id, approve=approve, comment=comment
        )
    except (PermissionDenied, Conflict) as exc:
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
    if command.status == CommandStatus.QUEUED:
        await runtime.hub.deliver([command])
    await auditor(
        action,
        target=f"command:{command.id}",
        device_id=command.device_id,
        risk="medium",
        detail={"comment": comment, "status": command.status},
    )
    return command


async def decide_job(
    session: AsyncSession,
    runtime: Runtime,
    auditor: Auditor,
    principal: Principal,
    job_id: uuid.UUID,
    *,
    approve: bool,
    comment: str = "",
) -> Job:
    action = "job.approved" if approve else "job.denied"
    try:
        check_step_up(principal, (await get_tenant(session, principal.tenant_id)).settings)
        job = await jobs.decide_job(session, principal, job_id, approve=approve, comment=comment)
    except (PermissionDenied, Conflict) as exc:
        await session.rollback()
        await auditor(
            action, "blocked", risk="high", target=f"job:{job_id}", detail={"reason": exc.code}
        )
        raise
    await session.commit()
    await auditor(
        action,
        target=f"job:{job.id}",
        risk="medium",
        detail={"comment": comment, "status": job.status},
    )
    if job.status == JobStatus.RUNNING:
        await runtime.jobs.advance(job.id, follow=False)
    return job
