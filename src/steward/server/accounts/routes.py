from __future__ import annotations

from fastapi import APIRouter

from steward.server.accounts import service
from steward.server.accounts.schemas import LoginRequest, TokenResponse
from steward.server.accounts.security import AccessClaims, issue_access_token
from steward.server.deps import RuntimeDep, SessionDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=TokenResponse)
async def login(body: LoginRequest, runtime: RuntimeDep, session: SessionDep) -> TokenResponse:
    tenant, user = await service.authenticate(session, body.tenant, body.email, body.password)
    ttl = runtime.settings.access_token_ttl_s
    token = issue_access_token(
        runtime.settings.effective_secret_key,
        AccessClaims(user_id=user.id, tenant_id=tenant.id, tenant_slug=tenant.slug, role=user.role),
        ttl,
    )
    return TokenResponse(access_token=token, expires_in=ttl)
