"""API tokens: `stw_<random>`, shown once, kept as SHA-256, scoped to permissions, expiring."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import ApiToken, User
from steward.server.accounts.principal import Principal, utcnow
from steward.server.accounts.sessions import TOUCH_EVERY
from steward.server.errors import InvalidInput, NotFound, Unauthorized
from steward.server.tenancy.models import Tenant, TenantStatus

PREFIX = "stw_"
MAX_LIFETIME_DAYS = 366


def is_api_token(bearer: str) -> bool:
    return bearer.startswith(PREFIX)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown to the user once, never stored


async def create_token(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    permissions: list[str],
    expires_in_days: int,
) -> IssuedToken:
    """A token for the principal, limited to permissions they hold themselves."""
    name = name.strip()
    if not name:
        raise InvalidInput("a token needs a name", code="invalid_name")
    if not 1 <= expires_in_days <= MAX_LIFETIME_DAYS:
        raise InvalidInput(
            f"tokens expire within 1 to {MAX_LIFETIME_DAYS} days", code="invalid_expiry"
        )
    held = {p.value for p in principal.permissions}
    extra = sorted(set(permissions) - held)
    if extra:
        raise InvalidInput(
            f"you cannot give a token permissions you do not have: {', '.join(extra)}",
            code="invalid_permissions",
        )
    if not permissions:
        raise InvalidInput("a token needs at least one permission", code="invalid_permissions")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=principal.user_id,
        name=name[:100],
        prefix=secret[:10],
        token_hash=token_hash(secret),
        permissions=sorted(set(permissions)),
        expires_at=utcnow() + timedelta(days=expires_in_days),
    )
    session.add(token)
    await session.flush()
    return IssuedToken(token, secret)


async def list_tokens(session: AsyncSession, user_id: uuid.UUID) -> list[ApiToken]:
    rows = await session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc())
    )
    return list(rows)


async def revoke_token(session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    token = await session.scalar(
        select(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
        )
    )
    if token is None:
        raise NotFound("token not found", code="not_found")
    token.revoked_at = utcnow()
    await session.flush()
    return token


async def find_token(system_session: AsyncSession, secret: str) -> tuple[ApiToken, User, Tenant]:
    """The live token with this secret, from any tenant (the caller checks the host). 401 else."""
    row = (
        await system_session.execute(
            select(ApiToken, User, Tenant)
            .join(User, User.id == ApiToken.user_id)
            .join(Tenant, Tenant.id == ApiToken.tenant_id)
            .where(ApiToken.token_hash == token_hash(secret))
        )
    ).first()
    if row is None:
        raise Unauthorized("the access token is not valid", code="invalid_token")
    token, user, tenant = row
    now = utcnow()
    if token.revoked_at is not None:
        raise Unauthorized("the token was revoked", code="token_revoked")
    if now >= token.expires_at:
        raise Unauthorized("the access token has expired", code="token_expired")
    if not user.is_active or tenant.status != TenantStatus.ACTIVE:
        raise Unauthorized("the account is disabled", code="account_disabled")
    return token, user, tenant


async def touch_token(system_session: AsyncSession, token: ApiToken, address: str) -> None:
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        await system_session.execute(
            update(ApiToken)
            .where(ApiToken.id == token.id)
            .values(last_used_at=now, last_used_address=address[:64])
        )
        await system_session.commit()
