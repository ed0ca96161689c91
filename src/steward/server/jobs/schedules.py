"""Schedules: a job template run at each time of a cron expression, in the tenant's time zone.

A schedule runs as the user who last set its job: their role, scope and time window are
checked again at every run (a disabled user's schedule fails, it does not run as anyone else).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.accounts.models import User
from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal, authorize
from steward.server.accounts.service import load_principal
from steward.server.audit.service import record as audit
from steward.server.db.base import utcnow
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import InvalidInput, NotFound, PermissionDenied, StewardError
from steward.server.jobs.models import Schedule
from steward.server.jobs.schemas import JobCreate, ScheduleCreate, ScheduleUpdate
from steward.server.jobs.service import create_job
from steward.server.tenancy.models import Tenant

log = logging.getLogger(__name__)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def check_cron(expression: str) -> str:
    text = " ".join(expression.split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise InvalidInput(
            f"{expression!r} is not a cron expression (minute hour day month weekday)",
            code="invalid_cron",
        )
    return text


def next_run(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time after `after` matching the expression in the tenant's time zone."""
    local = after.astimezone(_zone(timezone))
    result: datetime = croniter(expression, local).get_next(datetime)
    return result


async def _timezone(session: AsyncSession, tenant_id: uuid.UUID) -> str:
    tenant = await session.get(Tenant, tenant_id)
    return tenant.timezone if tenant is not None else "UTC"


async def create_schedule(
    session: AsyncSession, principal: Principal, request: ScheduleCreate
) -> Schedule:
    authorize(principal, Permission.COMMAND_RUN)
    cron = check_cron(request.cron)
    zone = await _timezone(session, principal.tenant_id)
    schedule = Schedule(
        name=request.name,
        cron=cron,
        template=request.job.model_dump(mode="json"),
        created_by=principal.email,
        enabled=request.enabled,
        next_run_at=next_run(cron, zone, utcnow()) if request.enabled else None,
        last_error="",
    )
    session.add(schedule)
    await session.flush()
    return schedule


async def schedule_for(
    session: AsyncSession, principal: Principal, schedule_id: uuid.UUID, *, change: bool = False
) -> Schedule:
    """Everyone who may run commands sees the tenant's schedules; only their owner or a
    tenant manager changes one."""
    authorize(principal, Permission.COMMAND_RUN if change else Permission.DEVICE_VIEW)
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound("no such schedule", code="schedule_not_found")
    owner = schedule.created_by == principal.email
    if change and not owner and Permission.TENANT_MANAGE not in principal.permissions:
        raise PermissionDenied(
            "only its owner or a tenant manager may change a schedule", code="not_owner"
        )
    return schedule


async def update_schedule(
    session: AsyncSession, principal: Principal, schedule_id: uuid.UUID, request: ScheduleUpdate
) -> Schedule:
    schedule = await schedule_for(session, principal, schedule_id, change=True)
    if request.name is not None:
        schedule.name = request.name
    if request.cron is not None:
        schedule.cron = check_cron(request.cron)
    if request.job is not None:
        # Whoever sets the command is whom it runs as.
        schedule.template = request.job.model_dump(mode="json")
        schedule.created_by = principal.email
    if request.enabled is not None:
        schedule.enabled = request.enabled
    zone = await _timezone(session, principal.tenant_id)
    schedule.next_run_at = next_run(schedule.cron, zone, utcnow()) if schedule.enabled else None
    await session.flush()
    return schedule


async def list_schedules(session: AsyncSession, principal: Principal) -> list[Schedule]:
    authorize(principal, Permission.DEVICE_VIEW)
    return list(await session.scalars(select(Schedule).order_by(Schedule.name)))


class ScheduleFirer:
    """Runs due schedules (all tenants). Each run is its own transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        system_sessions: async_sessionmaker[AsyncSession],
        default_timeout_s: float,
        started: object,
    ) -> None:
        self._sessions = sessions
        self._system = system_sessions
        self._timeout = default_timeout_s
        self._started = started  # async (job_id) -> None: the runner's advance

    async def fire_due(self) -> int:
        async with self._system() as session:
            due = list(
                await session.execute(
                    select(Schedule.id, Schedule.tenant_id).where(
                        Schedule.enabled.is_(True), Schedule.next_run_at <= utcnow()
                    )
                )
            )
            await session.commit()
        for schedule_id, tenant_id in due:
            await self._fire(schedule_id, tenant_id)
        return len(due)

    async def _fire(self, schedule_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        job_id: uuid.UUID | None = None
        error = ""
        async with self._sessions() as session:
            bind_tenant(session, tenant_id)
            schedule = await session.get(Schedule, schedule_id, with_for_update=True)
            if schedule is None or not schedule.enabled or schedule.next_run_at is None:
                return
            if schedule.next_run_at > utcnow():
                return  # another worker already ran it
            zone = await _timezone(session, tenant_id)
            schedule.last_run_at = utcnow()
            schedule.next_run_at = next_run(schedule.cron, zone, utcnow())
            owner = schedule.created_by
            template = dict(schedule.template)
            try:
                async with session.begin_nested():
                    user = await session.scalar(select(User).where(User.email == owner))
                    if user is None:
                        raise NotFound("its owner no longer exists", code="owner_missing")
                    principal = await load_principal(session, user.id)
                    created = await create_job(
                        session,
                        principal,
                        JobCreate.model_validate(template),
                        self._timeout,
                        schedule_id=schedule.id,
                    )
                    job_id = created.job.id
            except (StewardError, ValueError) as exc:
                error = getattr(exc, "message", None) or str(exc)
            schedule.last_job_id = job_id
            schedule.last_error = error[:255]
            await session.commit()
        await audit(
            self._system,
            tenant_id=tenant_id,
            actor="system",
            actor_name="scheduler",
            action="schedule.run",
            result="failure" if error else "success",
            target=f"schedule:{schedule_id}",
            detail={"job_id": str(job_id) if job_id else None, "error": error, "as": owner},
        )
        if job_id is not None:
            await self._started(job_id)  # type: ignore[operator]
