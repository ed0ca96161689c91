"""Reading jobs for lists and pages, in a fixed number of queries whatever the number of jobs
or devices: the jobs list (with each job's progress), the approver's waiting jobs, and one job
with a page of its per-device commands."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.principal import Principal
from steward.server.commands.models import Command
from steward.server.commands.schemas import ApprovalPublic, CommandSummary
from steward.server.commands.service import approvals_of
from steward.server.commands.summary import summarise
from steward.server.devices.access import visible_devices
from steward.server.devices.models import Device
from steward.server.jobs.models import Approval, Job
from steward.server.jobs.schemas import JobDetail, JobPublic, JobStatus

MAX_JOBS_PAGE = 200
JOB_DEVICES_PAGE = 100
MAX_JOB_DEVICES_PAGE = 500


def _reaches(principal: Principal) -> ColumnElement[bool]:
    """The job has at least one command on a device within the principal's scope."""
    return exists(
        select(Command.id)
        .join(Device, Device.id == Command.device_id)
        .where(Command.job_id == Job.id, visible_devices(principal))
    )


async def counts_by_job(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """How many of each job's commands are in each status, for many jobs in one query."""
    found: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    if not job_ids:
        return found
    rows = await session.execute(
        select(Command.job_id, Command.status, func.count())
        .where(Command.job_id.in_(job_ids))
        .group_by(Command.job_id, Command.status)
    )
    for job_id, status, count in rows.all():
        if job_id is not None:
            found[job_id][status] = count
    return found


async def list_jobs(
    session: AsyncSession,
    principal: Principal,
    *,
    status: JobStatus | None = None,
    limit: int = 50,
) -> list[JobPublic]:
    """Jobs with at least one device the principal reaches, newest first, with their counts
    (two queries)."""
    query = select(Job).where(_reaches(principal))
    if status is not None:
        query = query.where(Job.status == status)
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(min(limit, MAX_JOBS_PAGE))
    jobs = list(await session.scalars(query))
    counts = await counts_by_job(session, [job.id for job in jobs])
    return [
        JobPublic.model_validate(job, from_attributes=True).model_copy(
            update={"counts": counts.get(job.id, {})}
        )
        for job in jobs
    ]


async def jobs_waiting(session: AsyncSession, principal: Principal) -> list[JobPublic]:
    """Jobs waiting for the principal's approval (not their own), oldest first."""
    rows = await session.scalars(
        select(Job)
        .where(
            Job.status == JobStatus.PENDING_APPROVAL,
            Job.created_by != principal.email,
            _reaches(principal),
        )
        .order_by(Job.created_at)
        .limit(MAX_JOBS_PAGE)
    )
    return [JobPublic.model_validate(job, from_attributes=True) for job in rows]


async def job_detail(
    session: AsyncSession,
    principal: Principal,
    job: Job,
    *,
    limit: int = JOB_DEVICES_PAGE,
    offset: int = 0,
) -> JobDetail:
    """The job with its progress, its approvals, and one page (by hostname) of its commands on
    devices the principal reaches, with how many there are in all."""
    mine = (Command.job_id == job.id, visible_devices(principal))
    total = await session.scalar(
        select(func.count(Command.id)).join(Device, Device.id == Command.device_id).where(*mine)
    )
    rows = await session.execute(
        select(Command, Device.hostname)
        .join(Device, Device.id == Command.device_id)
        .where(*mine)
        .order_by(Device.hostname, Command.id)
        .limit(min(limit, MAX_JOB_DEVICES_PAGE))
        .offset(offset)
    )
    commands = [
        CommandSummary.of(
            command, hostname, command.error or summarise(command.type, command.payload)
        )
        for command, hostname in rows.all()
    ]
    decisions = await approvals_of(session, job_id=job.id)
    counts = await counts_by_job(session, [job.id])
    return JobDetail.model_validate(job, from_attributes=True).model_copy(
        update={
            "counts": counts.get(job.id, {}),
            "commands": commands,
            "commands_total": total or 0,
            "approvals": [
                ApprovalPublic.model_validate(a, from_attributes=True) for a in decisions
            ],
        }
    )


async def approvals_given(
    session: AsyncSession,
    *,
    command_ids: Sequence[uuid.UUID] = (),
    job_ids: Sequence[uuid.UUID] = (),
) -> dict[uuid.UUID, int]:
    """How many approvals each command and job has received, in one query (the inbox)."""
    found: dict[uuid.UUID, int] = {key: 0 for key in (*command_ids, *job_ids)}
    if not found:
        return found
    subject = func.coalesce(Approval.command_id, Approval.job_id)
    rows = await session.execute(
        select(subject, func.count())
        .where(
            Approval.decision == "approve",
            or_(
                Approval.command_id.in_(command_ids) if command_ids else false(),
                Approval.job_id.in_(job_ids) if job_ids else false(),
            ),
        )
        .group_by(subject)
    )
    for key, count in rows.all():
        found[key] = count
    return found
