from __future__ import annotations

from fastapi import APIRouter, Request

from steward.server.accounts import service
from steward.server.accounts.schemas import LoginRequest, TokenResponse
from steward.server.deps import RuntimeDep, SessionDep, client_address, host_tenant

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=TokenResponse)
async def login(
    body: LoginRequest, request: Request, runtime: RuntimeDep, session: SessionDep
) -> TokenResponse:
    """Sign in to the tenant of this host (`<tenant>.<base domain>`)."""
    tenant = host_tenant(request)
    token = await service.sign_in(
        session,
        runtime.login_throttle,
        runtime.settings,
        address=client_address(request),
        tenant=tenant.slug if body.tenant in (None, tenant.slug) else "",
        email=body.email,
        password=body.password,
    )
    return TokenResponse(access_token=token, expires_in=runtime.settings.access_token_ttl_s)
