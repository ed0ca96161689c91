"""Jobs: one command for many devices. Created with all their per-device commands (held, or
waiting for approval), committed before anything is dispatched; `runner.py` releases them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandStatus
from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal, authorize
from steward.server.commands import service as commands
from steward.server.commands.gate import Memo, TenantRules, Verdict, judge
from steward.server.commands.models import Command
from steward.server.commands.risk import Assessment
from steward.server.db.base import new_id, utcnow
from steward.server.devices.access import visible_devices
from steward.server.devices.models import Device
from steward.server.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from steward.server.jobs import lifecycle
from steward.server.jobs.models import Job
from steward.server.jobs.schemas import Excluded, JobCreate, JobStatus
from steward.server.jobs.targets import Reached, resolve

S = CommandStatus
J = JobStatus


class CreatedJob:
    def __init__(self, job: Job, excluded: list[Excluded]) -> None:
        self.job = job
        self.excluded = excluded


def _worst(verdicts: list[Verdict]) -> Assessment:
    combined = Assessment()
    for verdict in verdicts:
        for reason in verdict.assessment.reasons:
            if reason not in combined.reasons:
                combined.reasons.append(reason)
        if verdict.assessment.level.rank > combined.level.rank:
            combined.level = verdict.assessment.level
    return combined


async def create_job(
    session: AsyncSession,
    principal: Principal,
    request: JobCreate,
    default_timeout_s: float,
    *,
    schedule_id: uuid.UUID | None = None,
) -> CreatedJob:
    """Check every target device as a single command would be (role, scope, window, policy);
    devices refused are left out and listed; the job waits for approval when any of its
    commands would."""
    authorize(principal, Permission.COMMAND_RUN)
    payload = await commands.resolved_payload(session, principal, request.type, request.payload)
    rules = await TenantRules.load(session, principal.tenant_id)
    devices = await resolve(session, principal, request.target)
    if not devices:
        raise InvalidInput("the target matches no device you can reach", code="no_devices")
    accepted: list[tuple[Reached, Verdict]] = []
    excluded: list[Excluded] = []
    first_block: PermissionDenied | None = None
    memo = Memo()  # the payload's risk and each group's policy, worked out once
    for device in devices:
        try:
            verdict = judge(principal, rules, device, str(request.type), payload, memo)
            accepted.append((device, verdict))
        except (PermissionDenied, NotFound) as exc:
            first_block = first_block or (exc if isinstance(exc, PermissionDenied) else None)
            excluded.append(
                Excluded(device_id=device.id, hostname=device.hostname, reason=exc.message)
            )
    if not accepted:
        raise first_block or PermissionDenied("no device of the target may run this")
    verdicts = [verdict for _, verdict in accepted]
    approvals = max(v.approvals_needed for v in verdicts)
    assessment = _worst(verdicts)
    now = utcnow()
    expiry_s = request.expires_in_s or rules.security.command_expiry_h * 3600.0
    if approvals:
        status = J.PENDING_APPROVAL
    elif request.run_at is not None and request.run_at > now:
        status = J.SCHEDULED
    else:
        status = J.RUNNING
    job = Job(
        id=new_id(),
        name=request.name or _default_name(request),
        type=request.type,
        payload=payload,
        target=request.target.model_dump(mode="json"),
        status=status,
        created_by=principal.email,
        risk=assessment.level.value,
        risk_reasons=assessment.reasons,
        max_concurrency=request.max_concurrency,
        error_threshold=request.error_threshold,
        timeout_s=request.timeout_s or default_timeout_s,
        expiry_s=expiry_s,
        total=len(accepted),
        approvals_needed=approvals,
        approval_expires_at=(
            now + timedelta(hours=rules.security.approval_expiry_h) if approvals else None
        ),
        run_at=request.run_at,
        schedule_id=schedule_id,
        started_at=now if status is J.RUNNING else None,
        stop_reason="",
    )
    session.add(job)
    await session.flush()
    command_status = S.PENDING_APPROVAL if approvals else S.HELD
    # Delivery deadlines count from when the job may start.
    start = max(now, request.run_at or now)
    ids = [new_id() for _ in accepted]
    rows = [
        {
            "id": command_id,
            "tenant_id": principal.tenant_id,
            "created_at": now,
            "device_id": device.id,
            "job_id": job.id,
            "type": str(request.type),
            "payload": payload,
            "status": command_status,
            "timeout_s": job.timeout_s,
            "created_by": principal.email,
            "risk": verdict.assessment.level.value,
            "risk_reasons": verdict.assessment.reasons,
            "approvals_needed": approvals,
            "expires_at": start + timedelta(seconds=expiry_s),
            "stdout": "",
            "stderr": "",
            "error": "",
        }
        for command_id, (device, verdict) in zip(ids, accepted, strict=True)
    ]
    connection = await session.connection()  # Core executemany: no ORM work per row
    for chunk in range(0, len(rows), 1000):
        await connection.execute(insert(_COMMANDS), rows[chunk : chunk + 1000])
    await lifecycle.record(
        session,
        principal.tenant_id,
        ids,
        command_status,
        actor=principal.email,
        note=f"job {job.id}",
    )
    return CreatedJob(job, excluded)


_COMMANDS = cast(Table, Command.__table__)


def _default_name(request: JobCreate) -> str:
    from steward.server.commands.summary import summarise

    return f"{request.type}: {summarise(str(request.type), request.payload)}"[:200]


async def job_for(
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    permission: Permission = Permission.DEVICE_VIEW,
) -> Job:
    """The job, if the principal may do `permission` and reaches at least one of its devices
    (a job entirely outside someone's scope does not exist for them)."""
    authorize(principal, permission)
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound("no such job", code="job_not_found")
    reachable = await session.scalar(
        select(Command.id)
        .join(Device, Device.id == Command.device_id)
        .where(Command.job_id == job.id, visible_devices(principal))
        .limit(1)
    )
    if reachable is None:
        raise NotFound("no such job", code="job_not_found")
    return job


async def decide_job(
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    *,
    approve: bool,
    comment: str = "",
) -> Job:
    job = await job_for(session, principal, job_id, Permission.COMMAND_APPROVE)
    approvals = await commands.add_decision(
        session,
        principal,
        created_by=job.created_by,
        status=job.status,
        approval_expires_at=job.approval_expires_at,
        approve=approve,
        comment=comment,
        job_id=job.id,
    )
    ids = list(
        await session.scalars(
            select(Command.id).where(Command.job_id == job.id, Command.status == S.PENDING_APPROVAL)
        )
    )
    tenant = principal.tenant_id
    now = utcnow()
    if not approve:
        job.status = J.DENIED
        job.finished_at = now
        job.stop_reason = f"denied by {principal.email}"[:255]
        await _set_status(session, ids, S.DENIED, error=job.stop_reason, finished=True)
        await lifecycle.record(session, tenant, ids, S.DENIED, actor=principal.email, note=comment)
    elif approvals >= max(job.approvals_needed, 1):
        job.status = J.SCHEDULED if job.run_at and job.run_at > now else J.RUNNING
        if job.status == J.RUNNING:
            job.started_at = now
        await _set_status(session, ids, S.HELD)
        await lifecycle.record(
            session, tenant, ids, S.APPROVED, actor=principal.email, note=comment
        )
        await lifecycle.record(session, tenant, ids, S.HELD, actor=principal.email)
    await session.flush()
    return job


async def _set_status(
    session: AsyncSession,
    ids: list[uuid.UUID],
    status: str,
    *,
    error: str = "",
    finished: bool = False,
) -> None:
    values: dict[str, object] = {"status": status}
    if error:
        values["error"] = error
    if finished:
        values["finished_at"] = utcnow()
    for start in range(0, len(ids), 500):
        await session.execute(
            update(Command).where(Command.id.in_(ids[start : start + 500])).values(**values)
        )


async def cancel_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID
) -> tuple[Job, list[uuid.UUID]]:
    """Withdraw what has not reached an agent, ask agents to kill what runs. Returns the
    devices whose agents must be told."""
    job = await job_for(session, principal, job_id, Permission.COMMAND_RUN)
    if J(job.status).is_final:
        raise Conflict(f"the job is already {job.status}", code="already_finished")
    unfinished = list(
        await session.scalars(
            select(Command).where(
                Command.job_id == job.id, Command.status.not_in([s.value for s in _FINAL])
            )
        )
    )
    reached = {c.device_id for c in unfinished if c.status in (S.QUEUED, S.SENT, S.RUNNING)}
    await commands.cancel_commands(session, principal.tenant_id, unfinished, actor=principal.email)
    job.status = J.CANCELLED
    job.finished_at = utcnow()
    job.stop_reason = f"cancelled by {principal.email}"[:255]
    await session.flush()
    return job, sorted(reached)


_FINAL = [
    S.SUCCEEDED,
    S.FAILED,
    S.TIMED_OUT,
    S.CANCELLED,
    S.DENIED,
    S.EXPIRED,
]
