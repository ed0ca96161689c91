"""Request dependencies, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission, has_permission
from steward.server.accounts.security import AccessClaims, decode_access_token
from steward.server.accounts.service import Principal, load_principal
from steward.server.audit.service import record
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import NotFound, PermissionDenied, Unauthorized
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import HostContext, HostKind, HostTenant


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A session bound to no tenant yet: the request binds the one it proves. Routes commit."""
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_system_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A session for system work across tenants (the agent gateway). Routes commit."""
    async with runtime.system_sessions() as session:
        yield session


SystemSessionDep = Annotated[AsyncSession, Depends(get_system_session)]


def host_context(request: Request) -> HostContext:
    """What the host middleware resolved (tenant or platform host)."""
    context = getattr(request.state, "host", None)
    if not isinstance(context, HostContext):
        raise NotFound()
    return context


def host_tenant(request: Request) -> HostTenant:
    """The tenant whose host this request came to; 404 on the platform host."""
    context = host_context(request)
    if context.kind is not HostKind.TENANT or context.tenant is None:
        raise NotFound()
    return context.tenant


HostContextDep = Annotated[HostContext, Depends(host_context)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def check_token_host(request: Request, runtime: Runtime, claims: AccessClaims) -> None:
    """A token is only good on its own tenant's host. Anything else is refused and recorded."""
    context = host_context(request)
    if context.tenant is not None and context.tenant.id == claims.tenant_id:
        return
    # Kept in the log of the tenant whose host was used, else of the token's own tenant.
    concerned = context.tenant.id if context.tenant is not None else claims.tenant_id
    await record(
        runtime.system_sessions,
        tenant_id=concerned,
        actor=f"user:{claims.user_id}",
        action="cross_tenant_attempt",
        result="blocked",
        risk="high",
        address=client_address(request),
        target=f"{request.method} {request.url.path}",
        detail={
            "token_tenant": str(claims.tenant_id),
            "host": request.headers.get("host", "")[:200],
        },
    )
    raise PermissionDenied("this token belongs to another tenant", code="wrong_tenant")


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required", code="unauthorized")
    return token.strip()


async def get_principal(request: Request, runtime: RuntimeDep, session: SessionDep) -> Principal:
    claims = decode_access_token(runtime.settings.effective_secret_key, bearer_token(request))
    await check_token_host(request, runtime, claims)
    # From here on every query of this request sees only the principal's tenant.
    bind_tenant(session, claims.tenant_id)
    return await load_principal(session, claims.user_id)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Any:
    """`Depends(require(Permission.COMMAND_RUN))`: the principal, if the role allows it."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not has_permission(principal.role, permission):
            raise PermissionDenied(f"your role may not {permission.value}", code="forbidden")
        return principal

    return Depends(check)
