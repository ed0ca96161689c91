"""One's own account: /api/v1/account/* (password, MFA, sessions, API tokens)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from steward.server.accounts import actions, sessions, tokens
from steward.server.accounts.policy import security_settings
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
from steward.server.accounts.service import change_password
from steward.server.audit.auditor import Auditor
from steward.server.deps import (
    AuditorDep,
    CurrentPrincipal,
    RuntimeDep,
    SessionDep,
    SetupPrincipal,
    auditor_for,
)

router = APIRouter(prefix="/api/v1/account", tags=["account"])


async def _setup_auditor(
    request: Request, runtime: RuntimeDep, principal: SetupPrincipal
) -> Auditor:
    return auditor_for(request, runtime, principal)


AuditorForSetup = Annotated[Auditor, Depends(_setup_auditor)]


@router.get("", response_model=AccountPublic)
async def me(principal: SetupPrincipal, session: SessionDep) -> AccountPublic:
    user, tenant = await actions.user_and_tenant(session, principal.user_id)
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
    actions.session_only(principal)
    _, tenant = await actions.user_and_tenant(session, principal.user_id)
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
async def mfa_setup(principal: SetupPrincipal, session: SessionDep) -> MfaSetup:
    """Start setting up an authenticator app: scan the QR code, then confirm a code."""
    return await actions.start_mfa_setup(session, principal)


@router.post("/mfa/confirm", response_model=RecoveryCodes)
async def mfa_confirm(
    body: CodeRequest,
    principal: SetupPrincipal,
    session: SessionDep,
    runtime: RuntimeDep,
    request_auditor: AuditorForSetup,
) -> RecoveryCodes:
    """Confirm the first code: MFA is on. Returns recovery codes (shown once) and a new token."""
    return await actions.confirm_mfa(session, runtime, request_auditor, principal, body.code)


@router.post("/mfa/disable", status_code=204)
async def mfa_disable(
    body: CodeRequest, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    """Turn MFA off (with a current code); refused where the tenant requires it."""
    await actions.disable_mfa(session, auditor, principal, body.code)
    return Response(status_code=204)


@router.post("/mfa/recovery-codes", response_model=RecoveryCodes)
async def mfa_new_recovery_codes(
    body: CodeRequest, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> RecoveryCodes:
    """New recovery codes (the old ones stop working); needs a current code."""
    codes = await actions.new_recovery_codes(session, auditor, principal, body.code)
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
    await actions.revoke_own_session(session, auditor, principal, session_id)
    return Response(status_code=204)


@router.post("/sessions/revoke-all", status_code=204)
async def log_out_everywhere(
    principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    """End every session of yours, this one included."""
    await actions.log_out_everywhere(session, auditor, principal)
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
    issued = await actions.create_token(
        session,
        auditor,
        principal,
        name=body.name,
        permissions=[p.value for p in body.permissions],
        expires_in_days=body.expires_in_days,
    )
    public = ApiTokenPublic.model_validate(issued.token)
    return ApiTokenCreated(**public.model_dump(), token=issued.secret)


@router.delete("/tokens/{token_id}", status_code=204)
async def revoke_token(
    token_id: uuid.UUID, principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep
) -> Response:
    await actions.revoke_token(session, auditor, principal, token_id)
    return Response(status_code=204)
