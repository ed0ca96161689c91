"""Moves jobs along: releases held commands under each job's rate control, stops a job at its
error threshold, finishes it, starts jobs whose time has come, expires what waited too long,
and fires schedules.

`advance(job)` runs after every result of a job's command (and every few seconds for all
running jobs, in case a wake-up was lost); per job it never runs twice at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import CommandStatus
from steward.server.commands import service as commands
from steward.server.commands.delivery import JobCommand, Queued
from steward.server.commands.models import Command
from steward.server.db.base import utcnow
from steward.server.jobs import lifecycle
from steward.server.jobs.models import Job
from steward.server.jobs.schemas import JobStatus, rate

log = logging.getLogger(__name__)
S = CommandStatus
J = JobStatus
FAILURES = (S.FAILED, S.TIMED_OUT, S.EXPIRED)
IN_FLIGHT = (S.QUEUED, S.SENT, S.RUNNING)

Deliver = Callable[[Sequence[Queued]], Awaitable[None]]


class JobRunner:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], deliver: Deliver) -> None:
        self._sessions = sessions  # system sessions: jobs of every tenant
        self._deliver = deliver  # these commands were queued (after commit): send them
        self._active: set[uuid.UUID] = set()
        self._again: set[uuid.UUID] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.fire_schedules: Callable[[], Awaitable[int]] | None = None

    async def advance(self, job_id: uuid.UUID, *, follow: bool = True) -> None:
        """Bring the job up to date; a call while one runs makes that one go round again.
        With `follow=False` (a request that created the job) the caller waits for one round
        only: the rounds its results ask for go on in the background."""
        if job_id in self._active:
            self._again.add(job_id)
            return
        self._active.add(job_id)
        try:
            while True:
                self._again.discard(job_id)
                released = await self._advance_once(job_id)
                if released:
                    await self._deliver(released)
                if job_id not in self._again:
                    return
                if not follow:
                    self._in_background(job_id)
                    return
        finally:
            self._active.discard(job_id)

    def _in_background(self, job_id: uuid.UUID) -> None:
        task = asyncio.create_task(self._advance_logged(job_id), name=f"job {job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _advance_logged(self, job_id: uuid.UUID) -> None:
        try:
            await self.advance(job_id)
        except Exception:
            log.warning("advancing job %s failed; the sweep tries again", job_id, exc_info=True)

    async def _advance_once(self, job_id: uuid.UUID) -> list[Queued]:
        async with self._sessions() as session:
            job = await session.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.finished_at is not None:
                return []
            if job.status not in (J.RUNNING, J.STOPPED):
                return []
            counts = await _counts(session, job_id)
            released: list[Queued] = []
            if job.status == J.RUNNING:
                failures = sum(counts.get(s, 0) for s in FAILURES)
                threshold = job.error_threshold
                if threshold is not None and failures >= rate(threshold, job.total):
                    await self._stop(session, job, failures)
                    counts = await _counts(session, job_id)
                else:
                    in_flight = sum(counts.get(s, 0) for s in IN_FLIGHT)
                    room = rate(job.max_concurrency, job.total) - in_flight
                    if room > 0 and counts.get(S.HELD, 0):
                        released = await _release(session, job, room)
                        counts = await _counts(session, job_id)
            unfinished = sum(counts.get(s, 0) for s in (*IN_FLIGHT, S.HELD, S.PENDING_APPROVAL))
            if not unfinished:
                _finish(job, counts)
            await session.commit()
            return released

    async def _stop(self, session: AsyncSession, job: Job, failures: int) -> None:
        held = list(
            await session.scalars(
                select(Command.id).where(Command.job_id == job.id, Command.status == S.HELD)
            )
        )
        reason = f"stopped after {failures} failures (threshold {job.error_threshold})"
        for start in range(0, len(held), 500):
            await session.execute(
                update(Command)
                .where(Command.id.in_(held[start : start + 500]), Command.status == S.HELD)
                .values(status=S.CANCELLED, finished_at=utcnow(), error=reason[:255])
            )
        await lifecycle.record(
            session, job.tenant_id, held, S.CANCELLED, actor=lifecycle.SYSTEM, note=reason
        )
        job.status = J.STOPPED
        job.stop_reason = reason[:255]
        log.info("job %s: %s", job.id, reason)

    async def sweep(self) -> None:
        """Expire what waited too long, start due jobs, fire schedules, and advance every
        running job (a lost wake-up costs at most one sweep interval)."""
        async with self._sessions() as session:
            touched = await commands.expire_due(session)
            touched |= await _expire_jobs(session)
            touched |= await _start_due(session)
            running = await session.scalars(
                select(Job.id).where(
                    Job.status.in_([J.RUNNING, J.STOPPED]), Job.finished_at.is_(None)
                )
            )
            touched |= set(running)
            await session.commit()
        for job_id in touched:
            try:
                await self.advance(job_id)
            except Exception:
                log.warning("advancing job %s failed", job_id, exc_info=True)
        if self.fire_schedules is not None:
            await self.fire_schedules()


async def _counts(session: AsyncSession, job_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(Command.status, func.count())
        .where(Command.job_id == job_id)
        .group_by(Command.status)
    )
    return {status: count for status, count in rows.all()}


async def _release(session: AsyncSession, job: Job, room: int) -> list[Queued]:
    """Queue up to `room` held commands (oldest first), in one statement; returns them, to be
    sent. Another replica releasing at the same moment cannot take the same ones: the update
    only moves commands still held."""
    oldest_held = (
        select(Command.id)
        .where(Command.job_id == job.id, Command.status == S.HELD)
        .order_by(Command.created_at, Command.id)
        .limit(room)
    )
    table = cast(Table, Command.__table__)  # Core: no ORM work per returned row
    connection = await session.connection()
    released = await connection.execute(
        update(table)
        .where(table.c.id.in_(oldest_held.scalar_subquery()), table.c.status == S.HELD)
        .values(status=S.QUEUED)
        .returning(table.c.id, table.c.device_id)
    )
    # Every command of a job has the job's type, payload and timeout: not read back 10,000 times.
    rows: list[Queued] = [
        JobCommand(command_id, device_id, job.type, job.payload, job.timeout_s)
        for command_id, device_id in released.all()
    ]
    await lifecycle.record(
        session, job.tenant_id, [row.id for row in rows], S.QUEUED, actor=lifecycle.SYSTEM
    )
    return rows


def _finish(job: Job, counts: dict[str, int]) -> None:
    """Nothing is left to run: a stopped job stays `stopped` (with its end time)."""
    if job.status == J.RUNNING:
        ok = counts.get(S.SUCCEEDED, 0) == job.total
        job.status = J.SUCCEEDED if ok else J.FAILED
    job.finished_at = utcnow()


async def _expire_jobs(session: AsyncSession) -> set[uuid.UUID]:
    now = utcnow()
    jobs = list(
        await session.scalars(
            select(Job).where(Job.status == J.PENDING_APPROVAL, Job.approval_expires_at < now)
        )
    )
    for job in jobs:
        job.status = J.EXPIRED
        job.finished_at = now
        job.stop_reason = "nobody approved it in time"
        ids = list(
            await session.scalars(
                select(Command.id).where(
                    Command.job_id == job.id, Command.status == S.PENDING_APPROVAL
                )
            )
        )
        await session.execute(
            update(Command)
            .where(Command.job_id == job.id, Command.status == S.PENDING_APPROVAL)
            .values(status=S.EXPIRED, finished_at=now, error="nobody approved it in time")
        )
        await lifecycle.record(session, job.tenant_id, ids, S.EXPIRED, actor=lifecycle.SYSTEM)
    return set()


async def _start_due(session: AsyncSession) -> set[uuid.UUID]:
    now = utcnow()
    jobs = list(
        await session.scalars(select(Job).where(Job.status == J.SCHEDULED, Job.run_at <= now))
    )
    for job in jobs:
        job.status = J.RUNNING
        job.started_at = now
    return {job.id for job in jobs}
