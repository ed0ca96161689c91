"""A tenant's users and security settings: /api/v1/users, /api/v1/tenant/security."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from steward.server.accounts import actions, invitations, users
from steward.server.accounts.models import Role, User
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.policy import SecuritySettings, security_settings
from steward.server.accounts.principal import Principal
from steward.server.accounts.schemas import (
    Invitation,
    UserCreate,
    UserCreated,
    UserPublic,
    UserUpdate,
)
from steward.server.accounts.scope import parse_scope
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, client_address, require
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
        invited=user.invited,
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


@router.post("/users", response_model=UserCreated, status_code=201)
async def create(
    body: UserCreate,
    request: Request,
    principal: UserManager,
    auditor: AuditorDep,
    session: SessionDep,
) -> UserCreated:
    """Create a user with a first password, or without one: then the answer carries a one-time
    link (72 hours) where they choose it."""
    tenant = await _tenant(session, principal)
    if body.password is None:
        user, secret = await actions.invite_user(
            session,
            auditor,
            tenant,
            email=body.email,
            role=body.role,
            full_name=body.full_name,
            scope=body.scope,
        )
        return UserCreated(
            **_public(user).model_dump(), invitation=_invitation(request, user, secret)
        )
    user = await actions.create_user(
        session,
        auditor,
        tenant,
        email=body.email,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
        scope=body.scope,
    )
    return UserCreated(**_public(user).model_dump())


def _invitation(request: Request, user: User, secret: str) -> Invitation:
    assert user.invite_expires_at is not None
    base = str(request.base_url).rstrip("/")
    return Invitation(
        invite_url=f"{base}{invitations.INVITE_PATH}{secret}",
        invite_expires_at=user.invite_expires_at,
    )


@router.post("/users/{user_id}/invite", response_model=Invitation)
async def reinvite(
    user_id: uuid.UUID,
    request: Request,
    principal: UserManager,
    auditor: AuditorDep,
    session: SessionDep,
) -> Invitation:
    """A new sign-up link for a user who has not signed up yet (the previous link ends)."""
    user = await users.get_user(session, user_id)
    secret = await actions.reinvite(session, auditor, user)
    return _invitation(request, user, secret)


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
    changes = body.model_dump(exclude_unset=True, mode="json")
    await actions.update_user(session, auditor, principal, user, changes)
    return _public(user)


@router.post("/users/{user_id}/reset-mfa", status_code=204)
async def reset_mfa(
    user_id: uuid.UUID, principal: UserManager, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Remove a user's second factor (a lost phone). They set it up again at next sign-in."""
    await actions.reset_mfa(session, auditor, await users.get_user(session, user_id))
    return Response(status_code=204)


@router.post("/users/{user_id}/revoke-sessions", status_code=204)
async def revoke_sessions(
    user_id: uuid.UUID, principal: UserManager, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Sign a user out everywhere."""
    await actions.sign_user_out(session, auditor, await users.get_user(session, user_id))
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
    await actions.save_security_settings(
        session, auditor, runtime, tenant, body, address=client_address(request)
    )
    return body
