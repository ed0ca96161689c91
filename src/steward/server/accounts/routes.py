"""Signing in and out: /api/v1/auth/*."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from steward.server.accounts import service
from steward.server.accounts.models import SessionChannel
from steward.server.accounts.schemas import (
    CodeRequest,
    LoginRequest,
    MfaLoginRequest,
    TokenResponse,
)
from steward.server.accounts.service import SignIn
from steward.server.accounts.sessions import revoke_session
from steward.server.deps import (
    AuditorDep,
    CurrentPrincipal,
    RuntimeDep,
    SessionDep,
    host_auditor,
    host_tenant,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _response(result: SignIn) -> TokenResponse:
    return TokenResponse(
        status=result.status,
        access_token=result.access_token,
        mfa_token=result.mfa_token,
        expires_in=result.expires_in,
    )


@router.post("/login", response_model=TokenResponse)
async def login(
    body: LoginRequest, request: Request, runtime: RuntimeDep, session: SessionDep
) -> TokenResponse:
    """Sign in to the tenant of this host (`<tenant>.<base domain>`).

    With MFA the answer is `mfa_required` and an `mfa_token` for /api/v1/auth/mfa."""
    tenant = host_tenant(request)
    result = await service.sign_in(
        session,
        runtime.lockout,
        runtime.settings,
        host_auditor(request, runtime),
        tenant_slug=tenant.slug if body.tenant in (None, tenant.slug) else "",
        email=body.email,
        password=body.password,
        channel=SessionChannel.API,
    )
    return _response(result)


@router.post("/mfa", response_model=TokenResponse)
async def login_second_factor(
    body: MfaLoginRequest, request: Request, runtime: RuntimeDep, session: SessionDep
) -> TokenResponse:
    """Second step of a login: a code from the authenticator app, or a recovery code."""
    result = await service.complete_mfa(
        session,
        runtime.lockout,
        runtime.settings,
        host_auditor(request, runtime),
        tenant_id=host_tenant(request).id,
        mfa_token=body.mfa_token,
        code=body.code,
    )
    return _response(result)


@router.post("/step-up", response_model=TokenResponse)
async def step_up(
    body: CodeRequest,
    principal: CurrentPrincipal,
    auditor: AuditorDep,
    runtime: RuntimeDep,
    session: SessionDep,
) -> TokenResponse:
    """Confirm a fresh code before a sensitive action. The session is rotated: use the new
    token."""
    result = await service.step_up(
        session, runtime.lockout, runtime.settings, auditor, principal, body.code
    )
    return _response(result)


@router.post("/logout", status_code=204)
async def logout(principal: CurrentPrincipal, auditor: AuditorDep, session: SessionDep) -> Response:
    """End this session (its token stops working at once)."""
    if principal.session_id is not None:
        await revoke_session(session, principal.user_id, principal.session_id, "logout")
        await session.commit()
        await auditor("logout", detail={"session": str(principal.session_id)})
    return Response(status_code=204)
