"""The rules of terminal sessions: who may open, watch, see and end them; their rows.

- Opening one needs `terminal.open` on the device (role, scope, time window: `authorize`), and
  a fresh second factor when the tenant's step-up setting or its terminal policy asks for one.
- Watching a running session live: `terminal.open` on its device, or `tenant.manage`.
- Seeing sessions, their recordings and transcripts: `audit.view` or `terminal.open` (every
  session on a device in the user's scope); others see their own sessions only (and are refused
  anyone else's with 403).
- Ending anyone's session: `tenant.manage`.
- Sessions no live replica holds any more (it crashed) are closed by the leader's sweep
  (`close_lost_sessions`), with their recording's SHA-256 audited as for any close.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.policy import StepUp, security_settings
from steward.server.accounts.principal import Principal, authorize, reaches
from steward.server.accounts.principal import utcnow as clock
from steward.server.audit.service import record
from steward.server.db.base import utcnow
from steward.server.devices.access import device_for, visible_devices
from steward.server.devices.models import Device
from steward.server.errors import Conflict, NotFound, PermissionDenied
from steward.server.terminal.holdings import SessionHoldings
from steward.server.terminal.models import (
    CloseReason,
    SessionStatus,
    TerminalPolicy,
    TerminalSession,
)
from steward.server.terminal.recording import recording_path, stored_digest
from steward.server.terminal.schemas import TerminalPolicyPublic

log = logging.getLogger(__name__)

LOST_GRACE_S = 60.0  # a session no replica holds is lost once it is older than this
LOST_MARGIN_S = 600.0  # while that cannot be known: once older than its maximum and this
LIVE = (SessionStatus.OPENING, SessionStatus.OPEN)


@dataclass(frozen=True, slots=True)
class Opening:
    """What a new session needs, once its opening was allowed."""

    device: Device
    policy: TerminalPolicyPublic


def check_terminal_step_up(
    principal: Principal, tenant_settings: dict[str, Any] | None, policy: TerminalPolicyPublic
) -> None:
    """The tenant's step-up rule for sensitive actions (as `deps.check_step_up`); with the
    terminal policy's `require_step_up`, a fresh second factor is needed whatever that rule
    says, and users without MFA cannot open terminals."""
    security = security_settings(tenant_settings)
    mode = StepUp.REQUIRED if policy.require_step_up else security.step_up
    if mode is StepUp.OFF:
        return
    if not principal.mfa_enabled:
        if mode is StepUp.REQUIRED:
            raise PermissionDenied(
                "set up two-factor authentication to do this", code="mfa_required"
            )
        return
    max_age = timedelta(seconds=security.step_up_max_age_s)
    if principal.mfa_at is None or clock() - principal.mfa_at > max_age:
        raise PermissionDenied("confirm with a fresh two-factor code", code="step_up_required")


async def check_open(
    session: AsyncSession,
    principal: Principal,
    device_id: uuid.UUID,
    tenant_settings: dict[str, Any] | None,
    policy: TerminalPolicyPublic,
) -> Opening:
    device = await device_for(session, principal, P.TERMINAL_OPEN, device_id)
    check_terminal_step_up(principal, tenant_settings, policy)
    return Opening(device, policy)


async def create_session(
    session: AsyncSession,
    principal: Principal,
    opening: Opening,
    *,
    cols: int,
    rows: int,
) -> TerminalSession:
    row = TerminalSession(
        id=uuid.uuid4(),
        device_id=opening.device.id,
        user_id=principal.user_id,
        user_email=principal.email[:254],
        hostname=opening.device.hostname[:255],
        started_at=utcnow(),
        status=SessionStatus.OPENING,
        cols=cols,
        rows=rows,
        shell=opening.policy.shell,
        run_as=opening.policy.run_as,
        recording_group_id=opening.device.group_id,
        input_recorded=opening.policy.record_input,
    )
    row.recording_path = recording_path(row.id)
    session.add(row)
    await session.flush()
    return row


def may_see_all(principal: Principal) -> bool:
    return principal.can(P.AUDIT_VIEW) or principal.can(P.TERMINAL_OPEN)


async def get_session(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> tuple[TerminalSession, Device]:
    """A session the principal may see (its recording too), else 404."""
    found = (
        await session.execute(
            select(TerminalSession, Device)
            .join(Device, Device.id == TerminalSession.device_id)
            .where(TerminalSession.id == session_id)
        )
    ).first()
    if found is None:
        raise NotFound("no such terminal session", code="not_found")
    row, device = found[0], found[1]
    if not may_see_all(principal) and row.user_id != principal.user_id:
        raise PermissionDenied("you may not see others' terminal sessions", code="forbidden")
    if not reaches(principal, device):
        raise NotFound("no such terminal session", code="not_found")
    return row, device


async def list_sessions(
    session: AsyncSession,
    principal: Principal,
    *,
    device_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    user_email: str | None = None,
    live_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[TerminalSession], int]:
    """Newest first, with the total. Users without `audit.view` see their own only."""
    query = (
        select(TerminalSession)
        .join(Device, Device.id == TerminalSession.device_id)
        .where(visible_devices(principal))
    )
    if not may_see_all(principal):
        query = query.where(TerminalSession.user_id == principal.user_id)
    if device_id is not None:
        query = query.where(TerminalSession.device_id == device_id)
    if user_id is not None:
        query = query.where(TerminalSession.user_id == user_id)
    if user_email:
        pattern = "%" + user_email.lower().replace("\\", "").replace("%", "").replace("_", "") + "%"
        query = query.where(func.lower(TerminalSession.user_email).like(pattern))
    if live_only:
        query = query.where(TerminalSession.status.in_([SessionStatus.OPENING, SessionStatus.OPEN]))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(TerminalSession.started_at.desc(), TerminalSession.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), int(total)


async def check_watch(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID, *, running: bool = True
) -> tuple[TerminalSession, Device]:
    """A session the principal may watch (`terminal.open` on its device, or `tenant.manage`),
    and with `running`, one that has not ended."""
    row = await session.get(TerminalSession, session_id)
    if row is None:
        raise NotFound("no such terminal session", code="not_found")
    device = await session.get(Device, row.device_id)
    if device is None:
        raise NotFound("no such terminal session", code="not_found")
    if principal.can(P.TENANT_MANAGE) and reaches(principal, device):
        authorize(principal, P.TENANT_MANAGE)
    else:
        try:
            authorize(principal, P.TERMINAL_OPEN, device=device)
        except PermissionDenied as exc:
            if exc.code == "forbidden":  # not even the role: the session stays unseen
                raise NotFound("no such terminal session", code="not_found") from None
            raise
    if running and not row.live:
        raise NotFound("this session has ended", code="session_ended")
    return row, device


async def check_terminate(
    session: AsyncSession, principal: Principal, session_id: uuid.UUID
) -> tuple[TerminalSession, Device]:
    row, device = await get_session(session, principal, session_id)
    authorize(principal, P.TENANT_MANAGE, device=device)
    if not row.live:
        raise Conflict("this session has ended already", code="session_ended")
    return row, device


async def device_terminal_allowed(
    session: AsyncSession, principal: Principal, device_id: uuid.UUID
) -> Device:
    """The device, if the principal may open a terminal on it (for the page)."""
    return await device_for(session, principal, P.TERMINAL_OPEN, device_id)


async def close_lost_sessions(
    system_sessions: async_sessionmaker[AsyncSession],
    holdings: SessionHoldings,
    data_dir: Path,
    *,
    grace_s: float = LOST_GRACE_S,
    margin_s: float = LOST_MARGIN_S,
) -> int:
    """Close the sessions no live replica holds (the leader's sweep): `closed` with reason
    `server_lost` (`failed` if they never opened), the recording's size and SHA-256 taken from
    the stored file, `terminal.close` audited with them. While the replicas' holdings cannot be
    read (Redis down), only sessions older than their tenant's maximum duration are closed."""
    held = await holdings.all_held()
    now = utcnow()
    async with system_sessions() as session:
        rows = (
            await session.scalars(
                select(TerminalSession).where(
                    TerminalSession.status.in_(LIVE),
                    TerminalSession.started_at < now - timedelta(seconds=grace_s),
                )
            )
        ).all()
        tenants = {row.tenant_id for row in rows}
        policies = await session.execute(
            select(TerminalPolicy.tenant_id, TerminalPolicy.max_duration_s).where(
                TerminalPolicy.tenant_id.in_(tenants)
            )
        )
        maxima = {tenant_id: max_s for tenant_id, max_s in policies}
    default_max = TerminalPolicyPublic().max_duration_s
    closed = 0
    for row in rows:
        max_s = maxima.get(row.tenant_id, default_max) + margin_s
        too_old = row.started_at < now - timedelta(seconds=max_s)
        if (held is None or row.id in held) and not too_old:
            continue
        if await _close_lost(system_sessions, row, data_dir):
            closed += 1
    return closed


async def _close_lost(
    system_sessions: async_sessionmaker[AsyncSession], row: TerminalSession, data_dir: Path
) -> bool:
    size, digest = await asyncio.to_thread(stored_digest, data_dir, row)
    opened = row.status == SessionStatus.OPEN
    ended = utcnow()
    error = "the server holding this session stopped"
    async with system_sessions() as session:
        result = await session.execute(
            update(TerminalSession)
            .where(TerminalSession.id == row.id, TerminalSession.status.in_(LIVE))
            .values(
                status=SessionStatus.CLOSED if opened else SessionStatus.FAILED,
                close_reason=CloseReason.SERVER_LOST,
                error=error,
                ended_at=ended,
                recording_bytes=size,
                recording_sha256=digest,
            )
        )
        await session.commit()
    if getattr(result, "rowcount", 0) != 1:
        return False  # its replica closed it meanwhile
    log.warning("terminal %s: closed, no replica holds it any more", row.id)
    await record(
        system_sessions,
        tenant_id=row.tenant_id,
        actor="system",
        actor_name="terminal sweep",
        action="terminal.close" if opened else "terminal.open_failed",
        result="success" if opened else "failure",
        target=str(row.id),
        device_id=row.device_id,
        detail={
            "session_id": str(row.id),
            "reason": CloseReason.SERVER_LOST,
            "duration_s": round((ended - row.started_at).total_seconds(), 3),
            "exit_code": None,
            "sha256": digest,
            "size": size,
            "recording": row.recording_path if size else "",
            "recording_failed": row.recording_failed,
            "input_recorded": row.input_recorded,
            "error": error,
            "user": row.user_email,
        },
    )
    return True
