"""Platform administrators and the tenant management they do. Callers own the transaction."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import Role
from steward.server.accounts.security import (
    hash_password,
    issue_platform_token,
    verify_password,
)
from steward.server.accounts.service import check_password_policy, create_user, normalise_email
from steward.server.accounts.throttle import LoginThrottle
from steward.server.errors import Conflict, Unauthorized
from steward.server.platform.models import PlatformAdmin
from steward.server.settings import Settings
from steward.server.tenancy.models import Tenant
from steward.server.tenancy.service import create_tenant


@dataclass(frozen=True, slots=True)
class PlatformPrincipal:
    admin_id: uuid.UUID
    email: str


async def create_platform_admin(session: AsyncSession, email: str, password: str) -> PlatformAdmin:
    email = normalise_email(email)
    check_password_policy(password)
    if await session.scalar(select(PlatformAdmin.id).where(PlatformAdmin.email == email)):
        raise Conflict(f"platform administrator {email} already exists", code="user_exists")
    password_hash = await asyncio.to_thread(hash_password, password)
    admin = PlatformAdmin(email=email, password_hash=password_hash)
    session.add(admin)
    await session.flush()
    return admin


async def authenticate_platform_admin(
    session: AsyncSession, email: str, password: str
) -> PlatformAdmin:
    """Every failure looks the same and costs the same time, as for tenant users."""
    admin = await session.scalar(
        select(PlatformAdmin).where(PlatformAdmin.email == email.strip().lower())
    )
    if admin is not None:
        session.expunge(admin)
    await session.rollback()
    ok = await asyncio.to_thread(verify_password, admin.password_hash if admin else None, password)
    if not ok or admin is None or not admin.is_active:
        raise Unauthorized("wrong e-mail or password", code="invalid_credentials")
    return admin


async def load_platform_principal(session: AsyncSession, admin_id: uuid.UUID) -> PlatformPrincipal:
    admin = await session.get(PlatformAdmin, admin_id)
    if admin is None or not admin.is_active:
        raise Unauthorized("the session is no longer valid", code="invalid_token")
    return PlatformPrincipal(admin.id, admin.email)


async def create_tenant_with_admin(
    session: AsyncSession,
    slug: str,
    name: str,
    admin_email: str,
    admin_password: str,
    *,
    locale: str = "en",
    timezone: str = "UTC",
) -> Tenant:
    """A new tenant, its group `all` and its first ADMIN, in the caller's transaction."""
    check_password_policy(admin_password)
    normalise_email(admin_email)
    tenant = await create_tenant(session, slug, name, locale=locale, timezone=timezone)
    await create_user(session, tenant, admin_email, admin_password, Role.ADMIN)
    return tenant


async def platform_sign_in(
    session: AsyncSession,
    throttle: LoginThrottle,
    settings: Settings,
    *,
    address: str,
    email: str,
    password: str,
) -> str:
    """A throttled platform login (API and console alike): a platform token, or `RateLimited`
    or `Unauthorized`."""
    await throttle.check(address, "", email)
    try:
        admin = await authenticate_platform_admin(session, email, password)
    except Unauthorized:
        await throttle.failed(address, "", email)
        raise
    return issue_platform_token(
        settings.effective_secret_key, admin.id, settings.access_token_ttl_s
    )
