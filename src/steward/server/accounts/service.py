"""Users and authentication. No HTTP here; callers own the transaction."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import Role, User
from steward.server.accounts.security import (
    AccessClaims,
    hash_password,
    issue_access_token,
    verify_password,
)
from steward.server.accounts.throttle import LoginThrottle
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import Conflict, InvalidInput, Unauthorized
from steward.server.settings import Settings
from steward.server.tenancy.models import Tenant, TenantStatus

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a user of one tenant."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    email: str
    role: Role
    locale: str | None = None


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("not a valid e-mail address", code="invalid_email")
    return email


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"passwords need at least {MIN_PASSWORD_LENGTH} characters", code="weak_password"
        )


async def create_user(
    session: AsyncSession, tenant: Tenant, email: str, password: str, role: Role
) -> User:
    email = normalise_email(email)
    check_password_policy(password)
    existing = await session.scalar(
        select(User.id).where(User.tenant_id == tenant.id, User.email == email)
    )
    if existing is not None:
        raise Conflict(f"user {email} already exists", code="user_exists")
    password_hash = await asyncio.to_thread(hash_password, password)
    user = User(tenant_id=tenant.id, email=email, password_hash=password_hash, role=role)
    session.add(user)
    await session.flush()
    return user


async def authenticate(
    session: AsyncSession, tenant_slug: str, email: str, password: str
) -> tuple[Tenant, User]:
    """Check a login. Every failure looks the same to the caller (and costs the same time).

    Binds `session` to the tenant named (when there is one): the user is looked up in it."""
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == tenant_slug.strip().lower()))
    user = None
    if tenant is not None:
        bind_tenant(session, tenant.id)
        user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    # Argon2 takes a quarter of a second on purpose: keep it off the event loop, and end the
    # read-only transaction first so the database is not held meanwhile. The rows are detached
    # first so that they stay readable after it.
    for row in (tenant, user):
        if row is not None:
            session.expunge(row)
    await session.rollback()
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if (
        not ok
        or tenant is None
        or user is None
        or not user.is_active
        or tenant.status != TenantStatus.ACTIVE
    ):
        raise Unauthorized("wrong tenant, e-mail or password", code="invalid_credentials")
    return tenant, user


async def load_principal(session: AsyncSession, user_id: uuid.UUID) -> Principal:
    """The user `user_id` of the tenant `session` is bound to, if still allowed in."""
    row = (
        await session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == user_id)
        )
    ).first()
    if row is None:
        raise Unauthorized("the session is no longer valid", code="invalid_token")
    user, tenant = row
    if not user.is_active or tenant.status != TenantStatus.ACTIVE:
        raise Unauthorized("the account is disabled", code="account_disabled")
    return Principal(
        user_id=user.id,
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        email=user.email,
        role=Role(user.role),
        locale=user.locale,
    )


async def sign_in(
    session: AsyncSession,
    throttle: LoginThrottle,
    settings: Settings,
    *,
    address: str,
    tenant: str,
    email: str,
    password: str,
) -> str:
    """A throttled login (API and console alike): returns an access token, or raises
    `RateLimited` or `Unauthorized` (one error for every kind of wrong credential)."""
    throttle.check(address, tenant, email)
    try:
        if not (tenant.strip() and email.strip() and password):
            raise Unauthorized("wrong tenant, e-mail or password", code="invalid_credentials")
        tenant_row, user = await authenticate(session, tenant, email, password)
    except Unauthorized:
        throttle.failed(address, tenant, email)
        raise
    claims = AccessClaims(
        user_id=user.id, tenant_id=tenant_row.id, tenant_slug=tenant_row.slug, role=user.role
    )
    return issue_access_token(settings.effective_secret_key, claims, settings.access_token_ttl_s)
