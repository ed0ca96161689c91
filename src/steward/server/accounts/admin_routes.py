"""A tenant's users and security settings: /api/v1/users, /api/v1/tenant/security."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from steward.server.accounts import users
from steward.server.accounts.models import Role, User
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.policy import SecuritySettings, address_allowed, security_settings
from steward.server.accounts.principal import Principal
from steward.server.accounts.schemas import UserCreate, UserPublic, UserUpdate
from steward.server.accounts.scope import parse_scope
from steward.server.accounts.service import create_user
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, client_address, require
from steward.server.errors import Conflict
from steward.server.tenancy.hosts import announce_tenant_change
from steward.server.tenancy.models import Tenant

UserManager = Annotated[Principal, require(P.USER_MANAGE)]
TenantManager = Annotated[Principal, require(P.TENANT_MANAGE)]

router = APIRouter(prefix="/api/v1", tags=["users"])


def _public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=Role(user.role),
        is_active=user.is_active,
        scope=parse_scope(user.scope),
        mfa_enabled=user.mfa_enabled,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


async def _tenant(session: SessionDep, principal: Principal) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.id == principal.tenant_id))
    assert tenant is not None
    return tenant


@router.get("/users", response_model=list[UserPublic])
async def list_users(principal: UserManager, session: SessionDep) -> list[UserPublic]:
    return [_public(u) for u in await users.list_users(session)]


@router.post("/users", response_model=UserPublic, status_code=201)
async def create(
    body: UserCreate, principal: UserManager, auditor: AuditorDep, session: SessionDep
) -> UserPublic:
    """Create a user with a first password (they can change it, and set up MFA, at sign-in)."""
    tenant = await _tenant(session, principal)
    if body.scope is not None:
        await users.check_scope(session, body.scope)
    user = await create_user(
        session, tenant, body.email, body.password, body.role, full_name=body.full_name
    )
    if body.scope is not None:
        user.scope = body.scope.model_dump(mode="json", exclude_defaults=True)
    await session.commit()
    await auditor(
        "user.create",
        risk="medium",
        target=f"user:{user.id}",
        detail={"email": user.email, "role": user.role, "scope": user.scope},
    )
    return _public(user)


@router.get("/users/{user_id}", response_model=UserPublic)
async def get(user_id: uuid.UUID, principal: UserManager, session: SessionDep) -> UserPublic:
    return _public(await users.get_user(session, user_id))


@router.patch("/users/{user_id}", response_model=UserPublic)
async def update(
    user_id: uuid.UUID,
    body: UserUpdate,
    principal: UserManager,
    auditor: AuditorDep,
    session: SessionDep,
) -> UserPublic:
    """Change role, scope, name, language or disable. Role, scope or activity changes end
    the user's sessions."""
    user = await users.get_user(session, user_id)
    changed = await users.update_user(
        session, principal, user, body.model_dump(exclude_unset=True, mode="json")
    )
    await session.commit()
    if changed:
        risky = {"role", "scope", "is_active"} & changed.keys()
        await auditor(
            "user.update",
            risk="high" if risky else "low",
            target=f"user:{user.id}",
            detail={"email": user.email, "changes": changed},
        )
    return _public(user)


@router.post("/users/{user_id}/reset-mfa", status_code=204)
async def reset_mfa(
    user_id: uuid.UUID, principal: UserManager, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Remove a user's second factor (a lost phone). They set it up again at next sign-in."""
    user = await users.get_user(session, user_id)
    ended = await users.reset_mfa(session, user)
    await session.commit()
    await auditor(
        "mfa.reset",
        risk="high",
        target=f"user:{user.id}",
        detail={"email": user.email, "sessions_ended": ended},
    )
    return Response(status_code=204)


@router.post("/users/{user_id}/revoke-sessions", status_code=204)
async def revoke_sessions(
    user_id: uuid.UUID, principal: UserManager, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Sign a user out everywhere."""
    user = await users.get_user(session, user_id)
    ended = await users.revoke_all(session, user.id, "revoked_by_admin")
    await session.commit()
    await auditor(
        "session.revoke_all",
        risk="medium",
        target=f"user:{user.id}",
        detail={"email": user.email, "sessions_ended": ended},
    )
    return Response(status_code=204)


@router.get("/tenant/security", response_model=SecuritySettings)
async def get_security(principal: TenantManager, session: SessionDep) -> SecuritySettings:
    return security_settings((await _tenant(session, principal)).settings)


@router.put("/tenant/security", response_model=SecuritySettings)
async def put_security(
    body: SecuritySettings,
    request: Request,
    principal: TenantManager,
    auditor: AuditorDep,
    runtime: RuntimeDep,
    session: SessionDep,
) -> SecuritySettings:
    """MFA policy, step-up, session timeouts, password length and the IP allow-list."""
    tenant = await _tenant(session, principal)
    if not address_allowed(client_address(request), body.ip_allowlist):
        raise Conflict(
            "the allow-list would lock you out: add the address you are using",
            code="would_lock_out",
        )
    before = security_settings(tenant.settings).model_dump(mode="json")
    after = body.model_dump(mode="json")
    tenant.settings = {**(tenant.settings or {}), "security": after}
    await session.commit()
    await announce_tenant_change(runtime.bus, tenant.slug)
    changes = {k: [before[k], after[k]] for k in after if before.get(k) != after[k]}
    if changes:
        await auditor("settings.security", risk="high", detail={"changes": changes})
    return body
