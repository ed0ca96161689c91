from __future__ import annotations

from fastapi import APIRouter, Request

from steward.server.accounts import service
from steward.server.accounts.schemas import LoginRequest, TokenResponse
from steward.server.accounts.security import AccessClaims, issue_access_token
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import Unauthorized

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=TokenResponse)
async def login(
    body: LoginRequest, request: Request, runtime: RuntimeDep, session: SessionDep
) -> TokenResponse:
    address = request.client.host if request.client else "unknown"
    runtime.login_throttle.check(address, body.tenant, body.email)
    try:
        tenant, user = await service.authenticate(session, body.tenant, body.email, body.password)
    except Unauthorized:
        runtime.login_throttle.failed(address, body.tenant, body.email)
        raise
    ttl = runtime.settings.access_token_ttl_s
    token = issue_access_token(
        runtime.settings.effective_secret_key,
        AccessClaims(user_id=user.id, tenant_id=tenant.id, tenant_slug=tenant.slug, role=user.role),
        ttl,
    )
    return TokenResponse(access_token=token, expires_in=ttl)
