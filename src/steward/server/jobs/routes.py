"""`/api/v1/jobs`, `/api/v1/targets/preview`, `/api/v1/schedules`, device tags."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.commands import approvals
from steward.server.commands.schemas import Decision
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.devices.access import device_for
from steward.server.errors import PermissionDenied
from steward.server.jobs import listing, schedules, service, targets
from steward.server.jobs.schemas import (
    JobCreate,
    JobCreated,
    JobDetail,
    JobPublic,
    JobStatus,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["jobs"])
Viewer = Annotated[Principal, require(P.DEVICE_VIEW)]
Runner = Annotated[Principal, require(P.COMMAND_RUN)]
Approver = Annotated[Principal, require(P.COMMAND_APPROVE)]
Manager = Annotated[Principal, require(P.DEVICE_MANAGE)]
DecisionBody = Annotated[Decision | None, Body()]


@router.post("/targets/preview", response_model=targets.Preview)
async def preview_target(
    body: targets.Target, principal: Runner, session: SessionDep
) -> targets.Preview:
    """How many devices (and how many online) a target matches for you, with a sample."""
    return await targets.preview(session, principal, body)


@router.post("/jobs", response_model=JobCreated, status_code=201)
async def create_job(
    body: JobCreate,
    principal: Runner,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> JobCreated:
    """Run a command on many devices, with rate control; devices refused by scope or policy
    are left out (`excluded`)."""
    try:
        created = await service.create_job(
            session, principal, body, runtime.settings.command_timeout_s
        )
    except PermissionDenied as exc:
        await session.rollback()
        await auditor(
            "job.blocked",
            "blocked",
            risk="medium",
            detail={"type": str(body.type), "reason": exc.code, "message": exc.message},
        )
        raise
    job = created.job
    await session.commit()  # every command is stored before any is dispatched
    await auditor(
        "job.submitted",
        target=f"job:{job.id}",
        risk="medium",
        detail={
            "type": job.type,
            "payload": job.payload,
            "target": job.target,
            "total": job.total,
            "excluded": len(created.excluded),
            "status": job.status,
            "risk": job.risk,
        },
    )
    if job.status == JobStatus.RUNNING:
        await runtime.jobs.advance(job.id, follow=False)  # first release; not the whole job
    return JobCreated(
        id=job.id,
        status=JobStatus(job.status),
        total=job.total,
        risk=job.risk,
        risk_reasons=job.risk_reasons,
        approvals_needed=job.approvals_needed,
        excluded=created.excluded,
    )


@router.get("/jobs", response_model=list[JobPublic])
async def list_jobs(
    principal: Viewer,
    session: SessionDep,
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=listing.MAX_JOBS_PAGE)] = 50,
) -> list[JobPublic]:
    """Jobs with at least one device you reach, newest first."""
    return await listing.list_jobs(session, principal, status=status, limit=limit)


@router.get("/approvals/jobs", response_model=list[JobPublic])
async def jobs_waiting(principal: Approver, session: SessionDep) -> list[JobPublic]:
    """Jobs waiting for your approval (not your own), oldest first."""
    return await listing.jobs_waiting(session, principal)


@router.get("/jobs/{job_id}", response_model=JobDetail)
async def get_job(
    job_id: uuid.UUID,
    principal: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=listing.MAX_JOB_DEVICES_PAGE)] = listing.JOB_DEVICES_PAGE,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JobDetail:
    """The job with its progress per status and one page of its devices (those you reach, by
    hostname); `commands_total` says how many there are in all."""
    job = await service.job_for(session, principal, job_id)
    return await listing.job_detail(session, principal, job, limit=limit, offset=offset)


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic)
async def cancel_job(
    job_id: uuid.UUID,
    principal: Runner,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> JobPublic:
    """Withdraw queued commands; running ones are killed (process tree) by their agents."""
    job, agents = await service.cancel_job(session, principal, job_id)
    await session.commit()
    await auditor("job.cancelled", target=f"job:{job.id}", risk="medium")
    for device_id in agents:
        await runtime.hub.notify_cancel(device_id)
    return JobPublic.model_validate(job, from_attributes=True)


@router.post("/jobs/{job_id}/approve", response_model=JobPublic)
async def approve_job(
    job_id: uuid.UUID,
    principal: Approver,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: DecisionBody = None,
) -> JobPublic:
    job = await approvals.decide_job(
        session, runtime, auditor, principal, job_id, approve=True,
        comment=body.comment if body else "",
    )  # fmt: skip
    return JobPublic.model_validate(job, from_attributes=True)


@router.post("/jobs/{job_id}/deny", response_model=JobPublic)
async def deny_job(
    job_id: uuid.UUID,
    principal: Approver,
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: DecisionBody = None,
) -> JobPublic:
    job = await approvals.decide_job(
        session, runtime, auditor, principal, job_id, approve=False,
        comment=body.comment if body else "",
    )  # fmt: skip
    return JobPublic.model_validate(job, from_attributes=True)


# ---- device tags -----------------------------------------------------------------------------


class Tags(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(max_length=64)]] = Field(max_length=50)


@router.get("/devices/{device_id}/tags", response_model=Tags)
async def get_tags(device_id: uuid.UUID, principal: Viewer, session: SessionDep) -> Tags:
    await device_for(session, principal, P.DEVICE_VIEW, device_id)
    return Tags(tags=await targets.tags_of(session, device_id))


@router.put("/devices/{device_id}/tags", response_model=Tags)
async def put_tags(
    device_id: uuid.UUID, body: Tags, principal: Manager, auditor: AuditorDep, session: SessionDep
) -> Tags:
    device = await device_for(session, principal, P.DEVICE_MANAGE, device_id)
    try:
        tags = await targets.set_tags(session, device, body.tags)
    except ValueError as exc:
        from steward.server.errors import InvalidInput

        raise InvalidInput(str(exc), code="invalid_tag") from None
    await session.commit()
    await auditor("device.tags", target=f"device:{device_id}", device_id=device_id,
                  detail={"tags": tags})  # fmt: skip
    return Tags(tags=tags)


@router.get("/tags", response_model=list[str])
async def list_tags(principal: Viewer, session: SessionDep) -> list[str]:
    return await targets.all_tags(session)


# ---- schedules -------------------------------------------------------------------------------


@router.get("/schedules", response_model=list[SchedulePublic])
async def list_schedules(principal: Viewer, session: SessionDep) -> list[SchedulePublic]:
    return [
        SchedulePublic.model_validate(s, from_attributes=True)
        for s in await schedules.list_schedules(session, principal)
    ]


@router.post("/schedules", response_model=SchedulePublic, status_code=201)
async def create_schedule(
    body: ScheduleCreate, principal: Runner, auditor: AuditorDep, session: SessionDep
) -> SchedulePublic:
    """A job run at each time of `cron` (tenant time zone), as you: your rights are checked
    again at every run."""
    schedule = await schedules.create_schedule(session, principal, body)
    await session.commit()
    await auditor("schedule.create", target=f"schedule:{schedule.id}", risk="medium",
                  detail={"cron": schedule.cron, "template": schedule.template})  # fmt: skip
    return SchedulePublic.model_validate(schedule, from_attributes=True)


@router.get("/schedules/{schedule_id}", response_model=SchedulePublic)
async def get_schedule(
    schedule_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> SchedulePublic:
    schedule = await schedules.schedule_for(session, principal, schedule_id)
    return SchedulePublic.model_validate(schedule, from_attributes=True)


@router.patch("/schedules/{schedule_id}", response_model=SchedulePublic)
async def update_schedule(
    schedule_id: uuid.UUID,
    body: ScheduleUpdate,
    principal: Runner,
    auditor: AuditorDep,
    session: SessionDep,
) -> SchedulePublic:
    schedule = await schedules.update_schedule(session, principal, schedule_id, body)
    await session.commit()
    await auditor("schedule.update", target=f"schedule:{schedule.id}", risk="medium",
                  detail=body.model_dump(mode="json", exclude_none=True))  # fmt: skip
    return SchedulePublic.model_validate(schedule, from_attributes=True)


@router.delete("/schedules/{schedule_id}", status_code=204)
async def delete_schedule(
    schedule_id: uuid.UUID, principal: Runner, auditor: AuditorDep, session: SessionDep
) -> Response:
    schedule = await schedules.schedule_for(session, principal, schedule_id, change=True)
    await session.delete(schedule)
    await session.commit()
    await auditor("schedule.delete", target=f"schedule:{schedule_id}")
    return Response(status_code=204)
