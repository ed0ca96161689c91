"""Sign-in sessions. The access token carries the session id; the row decides whether it is
still good (not revoked, not idle too long, not past its lifetime)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import Role, SessionChannel, User, UserSession
from steward.server.accounts.policy import SecuritySettings, security_settings
from steward.server.accounts.principal import Principal, effective_permissions, utcnow
from steward.server.accounts.scope import parse_scope
from steward.server.errors import NotFound, PermissionDenied, Unauthorized
from steward.server.tenancy.models import Tenant, TenantStatus

# How often `last_seen_at` is written: idle timeouts are minutes, so a minute is precise enough.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session: UserSession
    user: User
    tenant: Tenant
    settings: SecuritySettings


def new_session(
    user: User,
    settings: SecuritySettings,
    *,
    channel: SessionChannel,
    address: str,
    user_agent: str,
    mfa_at: datetime | None = None,
    setup_only: bool = False,
) -> UserSession:
    now = utcnow()
    return UserSession(
        id=uuid.uuid4(),
        tenant_id=user.tenant_id,
        user_id=user.id,
        channel=channel,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_lifetime_h),
        address=address[:64],
        user_agent=user_agent[:300],
        mfa_at=mfa_at,
        mfa_setup_only=setup_only,
    )


async def rotate(
    session: AsyncSession, old: UserSession, *, mfa_at: datetime | None
) -> UserSession:
    """A new session id for the same sign-in (after a privilege change); the old one ends."""
    now = utcnow()
    fresh = UserSession(
        id=uuid.uuid4(),
        tenant_id=old.tenant_id,
        user_id=old.user_id,
        channel=old.channel,
        created_at=now,
        last_seen_at=now,
        expires_at=old.expires_at,
        address=old.address,
        user_agent=old.user_agent,
        mfa_at=mfa_at if mfa_at is not None else old.mfa_at,
        mfa_setup_only=False,
    )
    old.revoked_at, old.revoked_reason = now, "rotated"
    session.add(fresh)
    await session.flush()
    return fresh


async def load_session(
    session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID
) -> SessionInfo:
    """The live session `session_id` of `user_id` in the bound tenant, touched; else 401."""
    row = (
        await session.execute(
            select(UserSession, User, Tenant)
            .join(User, User.id == UserSession.user_id)
            .join(Tenant, Tenant.id == UserSession.tenant_id)
            .where(UserSession.id == session_id, UserSession.user_id == user_id)
        )
    ).first()
    if row is None:
        raise Unauthorized("the session is no longer valid", code="invalid_token")
    user_session, user, tenant = row
    settings = security_settings(tenant.settings)
    now = utcnow()
    if user_session.revoked_at is not None:
        raise Unauthorized("the session was ended", code="session_revoked")
    idle = timedelta(minutes=settings.session_idle_timeout_min)
    if now >= user_session.expires_at or now - user_session.last_seen_at >= idle:
        raise Unauthorized("the session has expired", code="session_expired")
    if not user.is_active or tenant.status != TenantStatus.ACTIVE:
        raise Unauthorized("the account is disabled", code="account_disabled")
    if now - user_session.last_seen_at >= TOUCH_EVERY:
        await session.execute(
            update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now)
        )
        await session.commit()
    return SessionInfo(user_session, user, tenant, settings)


def principal_of(
    user: User,
    tenant: Tenant,
    *,
    session_id: uuid.UUID | None = None,
    mfa_at: datetime | None = None,
    token_id: uuid.UUID | None = None,
    token_name: str = "",
    token_permissions: list[str] | None = None,
) -> Principal:
    scope = parse_scope(user.scope)
    return Principal(
        user_id=user.id,
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        email=user.email,
        role=Role(user.role),
        locale=user.locale,
        permissions=effective_permissions(user.role, scope, token_permissions),
        scope=scope,
        timezone=tenant.timezone,
        session_id=session_id,
        token_id=token_id,
        token_name=token_name,
        mfa_enabled=user.mfa_enabled,
        mfa_at=mfa_at,
    )


def check_setup_only(info: SessionInfo, *, allow_setup: bool) -> None:
    if info.session.mfa_setup_only and not allow_setup:
        raise PermissionDenied("set up two-factor authentication first", code="mfa_setup_required")


async def list_sessions(session: AsyncSession, user_id: uuid.UUID) -> list[UserSession]:
    """The user's sessions that can still be used, newest first."""
    now = utcnow()
    rows = await session.scalars(
        select(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
        )
        .order_by(UserSession.last_seen_at.desc())
    )
    return list(rows)


async def revoke_session(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, reason: str
) -> None:
    result = await session.execute(
        update(UserSession)
        .where(
            UserSession.id == session_id,
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("session not found", code="not_found")


async def revoke_all(
    session: AsyncSession, user_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
) -> int:
    """End every session of the user (but `keep`); returns how many ended."""
    condition = (UserSession.user_id == user_id) & UserSession.revoked_at.is_(None)
    if keep is not None:
        condition &= UserSession.id != keep
    result = await session.execute(
        update(UserSession).where(condition).values(revoked_at=utcnow(), revoked_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
