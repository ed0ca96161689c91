"""One's own account: /api/v1/account/* (password, MFA, sessions, API tokens)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from steward.server.accounts import mfa, sessions, tokens
from steward.server.accounts.models import User, UserSession
from steward.server.accounts.policy import security_settings
from steward.server.accounts.principal import Principal, utcnow
from steward.server.accounts.schemas import (
    AccountPublic,
    ApiTokenCreated,
    ApiTokenPublic,
    CodeRequest,
    MfaSetup,
    PasswordChange,
    RecoveryCodes,
    SessionPublic,
    TokenCreate,
)
from steward.server.accounts.service import change_password, session_token
from steward.server.audit.auditor import Auditor
from steward.server.deps import (
    AuditorDep,
    CurrentPrincipal,
    RuntimeDep,
    SessionDep,
    SetupPrincipal,
    auditor_for,
)
from steward.server.errors import Conflict, PermissionDenied, Unauthorized
from steward.server.tenancy.models import Tenant

router = APIRouter(prefix="/api/v1/account", tags=["account"])


async def _setup_auditor(
    request: Request, runtime: RuntimeDep, principal: SetupPrincipal
) -> Auditor:
    return auditor_for(request, runtime, principal)


AuditorForSetup = Annotated[Auditor, Depends(_setup_auditor)]


async def _user_and_tenant(session: SessionDep, user_id: uuid.UUID) -> tuple[User, Tenant]:
    row = (
        await session.execute(
            select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id).where(User.id == user_id)
        )
    ).first()
    assert row is not None
    return row[0], row[1]


def _session_only(principal: Principal) -> uuid.UUID:
    if principal.session_id is None:
        raise PermissionDenied("sign in to manage your account", code="session_required")
    return principal.session_id


@router.get("", response_model=AccountPublic)
async def me(principal: SetupPrincipal, session: SessionDep) -> AccountPublic:
    user, tenant = await _user_and_tenant(session, principal.user_id)
    return AccountPublic(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=principal.role,
        permissions=sorted(principal.permissions),
        scope=principal.scope,
        mfa_enabled=user.mfa_enabled,
        mfa_required=security_settings(tenant.settings).mfa_required_for(user.role),
        tenant=tenant.slug,
        timezone=tenant.timezone,
        via="token" if principal.token_id else "session",
    )


@router.post("/password", status_code=204)
async def set_password(
    body: PasswordChange, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Change your password. Your other sessions end."""
    _session_only(principal)
    _, tenant = await _user_and_tenant(session, principal.user_id)
    await change_password(
        session,
        principal,
        auditor,
        current=body.current_password,
        new=body.new_password,
        policy=security_settings(tenant.settings),
    )
    return Response(status_code=204)


@router.post("/mfa/setup", response_model=MfaSetup)
async def mfa_setup(
    principal: SetupPrincipal, session: SessionDep, runtime: RuntimeDep
) -> MfaSetup:
    """Start setting up an authenticator app: scan the QR code, then confirm a code."""
    _session_only(principal)
    user, tenant = await _user_and_tenant(session, principal.user_id)
    if user.mfa_enabled:
        raise Conflict("two-factor authentication is already on", code="mfa_already_enabled")
    user.mfa_pending_secret = mfa.new_secret()
    uri = mfa.provisioning_uri(user.mfa_pending_secret, user.email, tenant.slug)
    await session.commit()
    return MfaSetup(secret=user.mfa_pending_secret, otpauth_uri=uri, qr_svg=mfa.qr_svg(uri))


async def confirm_mfa(
    session: SessionDep, runtime: RuntimeDep, auditor: Auditor, principal: Principal, code: str
) -> RecoveryCodes:
    """Shared by the API and the console: turn the pending secret on, rotate the session."""
    session_id = _session_only(principal)
    user, tenant = await _user_and_tenant(session, principal.user_id)
    if user.mfa_pending_secret is None:
        raise Conflict("start the set-up first", code="mfa_not_started")
    step = mfa.check_code(user.mfa_pending_secret, code, None)
    if step is None:
        await session.rollback()  # free the connection for the audit record
        await auditor("mfa.enable", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    codes = mfa.enable(user, step)
    current = await session.get(UserSession, session_id)
    assert current is not None
    fresh = await sessions.rotate(session, current, mfa_at=utcnow())
    await session.commit()
    await auditor("mfa.enable", risk="medium")
    token = session_token(runtime.settings, tenant, fresh).access_token
    return RecoveryCodes(recovery_codes=codes, access_token=token)


@router.post("/mfa/confirm", response_model=RecoveryCodes)
async def mfa_confirm(
    body: CodeRequest,
    principal: SetupPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
    request_auditor: AuditorForSetup,
) -> RecoveryCodes:
    """Confirm the first code: MFA is on. Returns recovery codes (shown once) and a new token."""
    return await confirm_mfa(session, runtime, request_auditor, principal, body.code)


@router.post("/mfa/disable", status_code=204)
async def mfa_disable(
    body: CodeRequest, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Turn MFA off (with a current code); refused where the tenant requires it."""
    _session_only(principal)
    user, tenant = await _user_and_tenant(session, principal.user_id)
    if security_settings(tenant.settings).mfa_required_for(user.role):
        raise Conflict("your organisation requires two-factor authentication", code="mfa_required")
    if not mfa.verify_second_factor(user, body.code):
        await session.rollback()  # free the connection for the audit record
        await auditor("mfa.disable", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    mfa.disable(user)
    await session.commit()
    await auditor("mfa.disable", risk="high")
    return Response(status_code=204)


@router.post("/mfa/recovery-codes", response_model=RecoveryCodes)
async def mfa_new_recovery_codes(
    body: CodeRequest, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> RecoveryCodes:
    """New recovery codes (the old ones stop working); needs a current code."""
    _session_only(principal)
    user, _ = await _user_and_tenant(session, principal.user_id)
    if not mfa.verify_second_factor(user, body.code):
        await session.rollback()  # free the connection for the audit record
        await auditor("mfa.recovery_codes", "failure", risk="medium")
        raise Unauthorized("the code is not valid", code="invalid_code")
    codes = mfa.new_recovery_codes()
    user.mfa_recovery_hashes = [mfa.recovery_hash(c) for c in codes]
    await session.commit()
    await auditor("mfa.recovery_codes", risk="medium")
    return RecoveryCodes(recovery_codes=codes)


@router.get("/sessions", response_model=list[SessionPublic])
async def list_sessions(principal: CurrentPrincipal, session: SessionDep) -> list[SessionPublic]:
    rows = await sessions.list_sessions(session, principal.user_id)
    return [
        SessionPublic.model_validate(row).model_copy(
            update={"current": row.id == principal.session_id}
        )
        for row in rows
    ]


@router.delete("/sessions/{session_id}", status_code=204)
async def revoke_session(
    session_id: uuid.UUID, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    await sessions.revoke_session(session, principal.user_id, session_id, "revoked")
    await session.commit()
    await auditor("session.revoke", target=f"session:{session_id}")
    return Response(status_code=204)


@router.post("/sessions/revoke-all", status_code=204)
async def log_out_everywhere(
    principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    """End every session of yours, this one included."""
    ended = await sessions.revoke_all(session, principal.user_id, "log_out_everywhere")
    await session.commit()
    await auditor("session.revoke_all", risk="medium", detail={"sessions_ended": ended})
    return Response(status_code=204)


@router.get("/tokens", response_model=list[ApiTokenPublic])
async def list_tokens(principal: CurrentPrincipal, session: SessionDep) -> list[ApiTokenPublic]:
    return [
        ApiTokenPublic.model_validate(t)
        for t in await tokens.list_tokens(session, principal.user_id)
    ]


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201)
async def create_token(
    body: TokenCreate, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> ApiTokenCreated:
    """A token for scripts, limited to the permissions listed (within yours). Shown once."""
    _session_only(principal)
    issued = await tokens.create_token(
        session,
        principal,
        name=body.name,
        permissions=[p.value for p in body.permissions],
        expires_in_days=body.expires_in_days,
    )
    await session.commit()
    await auditor(
        "token.create",
        risk="medium",
        target=f"token:{issued.token.id}",
        detail={"name": issued.token.name, "permissions": issued.token.permissions},
    )
    public = ApiTokenPublic.model_validate(issued.token)
    return ApiTokenCreated(**public.model_dump(), token=issued.secret)


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: uuid.UUID, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    token = await tokens.revoke_token(session, principal.user_id, token_id)
    await session.commit()
    await auditor("token.revoke", target=f"token:{token_id}", detail={"name": token.name})
    return Response(status_code=204)
