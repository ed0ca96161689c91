"""Request dependencies, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission, has_permission
from steward.server.accounts.security import decode_access_token
from steward.server.accounts.service import Principal, load_principal
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import PermissionDenied, Unauthorized
from steward.server.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A session not bound to any tenant (login, agent endpoints). Routes commit."""
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required", code="unauthorized")
    return token.strip()


async def get_principal(request: Request, runtime: RuntimeDep, session: SessionDep) -> Principal:
    claims = decode_access_token(runtime.settings.effective_secret_key, bearer_token(request))
    principal = await load_principal(session, claims.user_id, claims.tenant_id)
    # From here on every query of this request sees only the principal's tenant.
    bind_tenant(session, principal.tenant_id)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Any:
    """`Depends(require(Permission.COMMAND_RUN))`: the principal, if the role allows it."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not has_permission(principal.role, permission):
            raise PermissionDenied(f"your role may not {permission.value}", code="forbidden")
        return principal

    return Depends(check)
