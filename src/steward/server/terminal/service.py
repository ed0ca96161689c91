"""The rules of terminal sessions: who may open, watch, see and end them; their rows.

- Opening one needs `terminal.open` on the device (role, scope, time window: `authorize`), and
  a fresh second factor when the tenant's step-up setting or its terminal policy asks for one.
- Watching a running session live: `terminal.open` on its device, or `tenant.manage`.
- Seeing sessions, their recordings and transcripts: `audit.view` or `terminal.open` (every
  session on a device in the user's scope); others see their own sessions only (and are refused
  anyone else's with 403).
- Ending anyone's session: `tenant.manage`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.policy import StepUp, security_settings
from steward.server.accounts.principal import Principal, authorize, reaches
from steward.server.accounts.principal import utcnow as clock
from steward.server.db.base import utcnow
from steward.server.devices.access import device_for, visible_devices
from steward.server.devices.models import Device
from steward.server.errors import Conflict, NotFound, PermissionDenied
from steward.server.terminal.models import SessionStatus, TerminalSession
from steward.server.terminal.recording import recording_path
from steward.server.terminal.schemas import TerminalPolicyPublic


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
