"""Request dependencies, as `Annotated` aliases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts import tokens
from steward.server.accounts.permissions import Permission
from steward.server.accounts.policy import StepUp, security_settings
from steward.server.accounts.principal import Principal, authorize, utcnow
from steward.server.accounts.security import decode_access_token
from steward.server.accounts.sessions import check_setup_only, load_session, principal_of
from steward.server.audit.auditor import Auditor, Origin
from steward.server.audit.service import record
from steward.server.db.tenant_filter import bind_tenant
from steward.server.errors import NotFound, PermissionDenied, Unauthorized
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import HostContext, HostKind, HostTenant
from steward.server.tenancy.models import Tenant


async def get_runtime(request: Request) -> Runtime:  # async: no thread hop per request
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


async def _host_context(request: Request) -> HostContext:
    return host_context(request)


HostContextDep = Annotated[HostContext, Depends(_host_context)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def origin_of(request: Request) -> Origin:
    return Origin(client_address(request), request.headers.get("user-agent", "")[:300])


async def check_token_host(
    request: Request, runtime: Runtime, tenant_id: uuid.UUID, actor: str
) -> None:
    """A credential is only good on its own tenant's host. Anything else is refused and
    recorded."""
    context = host_context(request)
    if context.tenant is not None and context.tenant.id == tenant_id:
        return
    # Kept in the log of the tenant whose host was used, else of the token's own tenant.
    concerned = context.tenant.id if context.tenant is not None else tenant_id
    origin = origin_of(request)
    await record(
        runtime.system_sessions,
        tenant_id=concerned,
        actor=actor,
        action="cross_tenant_attempt",
        result="blocked",
        risk="high",
        address=origin.address,
        user_agent=origin.user_agent,
        target=f"{request.method} {request.url.path}",
        detail={"token_tenant": str(tenant_id), "host": request.headers.get("host", "")[:200]},
    )
    raise PermissionDenied("this token belongs to another tenant", code="wrong_tenant")


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required", code="unauthorized")
    return token.strip()


async def principal_from_token(
    request: Request,
    runtime: Runtime,
    session: AsyncSession,
    token: str,
    *,
    allow_setup: bool = False,
) -> tuple[Principal, Tenant]:
    """Whoever `token` (a session's access token or an API token) speaks for, on this host.

    Binds `session` to their tenant: every later query of the request sees only it."""
    if tokens.is_api_token(token):
        # One session at a time: SQLite's pool has a single connection.
        async with runtime.system_sessions() as system:
            api_token, user, tenant = await tokens.find_token(system, token)
            system.expunge_all()
        await check_token_host(request, runtime, tenant.id, f"token:{api_token.id}")
        async with runtime.system_sessions() as system:
            await tokens.touch_token(system, api_token, client_address(request))
        bind_tenant(session, tenant.id)
        await _release(session)
        principal = principal_of(
            user,
            tenant,
            token_id=api_token.id,
            token_name=api_token.name,
            token_permissions=list(api_token.permissions),
        )
        return principal, tenant
    claims = decode_access_token(runtime.settings.effective_secret_key, token)
    await check_token_host(request, runtime, claims.tenant_id, f"user:{claims.user_id}")
    bind_tenant(session, claims.tenant_id)
    info = await load_session(session, claims.session_id, claims.user_id)
    check_setup_only(info, allow_setup=allow_setup)
    principal = principal_of(
        info.user, info.tenant, session_id=info.session.id, mfa_at=info.session.mfa_at
    )
    await _release(session)
    return principal, info.tenant


async def _release(session: AsyncSession) -> None:
    """End the read transaction that proved who is asking: the route starts its own, and the
    audit log and lock-out (their own sessions) find a free connection (SQLite has one)."""
    session.expunge_all()
    await session.rollback()


async def get_principal(request: Request, runtime: RuntimeDep, session: SessionDep) -> Principal:
    principal, _ = await principal_from_token(request, runtime, session, bearer_token(request))
    return principal


async def get_setup_principal(
    request: Request, runtime: RuntimeDep, session: SessionDep
) -> Principal:
    """Also a session that may only set up MFA (the tenant requires it and the user has none)."""
    principal, _ = await principal_from_token(
        request, runtime, session, bearer_token(request), allow_setup=True
    )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
SetupPrincipal = Annotated[Principal, Depends(get_setup_principal)]


def require(permission: Permission) -> Any:
    """`Depends(require(P.AUDIT_VIEW))`: the principal, if role, scope and time window allow.

    Actions on a device also check that device (`devices.access.device_for`) in the service."""

    async def check(
        request: Request, runtime: RuntimeDep, principal: CurrentPrincipal
    ) -> Principal:
        await authorize_or_record(request, runtime, principal, permission)
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # for the permission tests
    return Depends(check)


async def authorize_or_record(
    request: Request, runtime: Runtime, principal: Principal, permission: Permission
) -> None:
    """`authorize`, and a refusal goes into the audit log (once a minute per user, permission
    and route, so that a script hammering a route is one line, not thousands)."""
    try:
        authorize(principal, permission)
    except PermissionDenied as exc:
        # The route as declared (`/users/{user_id}`): ids typed into a refused URL are not
        # evidence of anything, and may be anyone's.
        route = getattr(request.scope.get("route"), "path", request.url.path)
        key = (principal.actor, permission.value, route)
        if runtime.refusals.first_in_window(key):
            await auditor_for(request, runtime, principal)(
                "access.denied",
                "blocked",
                risk="medium",
                target=f"{request.method} {route}"[:200],
                detail={"permission": permission.value, "reason": exc.code},
            )
        raise


def auditor_for(request: Request, runtime: Runtime, principal: Principal) -> Auditor:
    return Auditor(
        runtime.system_sessions,
        principal.tenant_id,
        principal.actor,
        principal.actor_name,
        origin_of(request),
    )


async def get_auditor(
    request: Request, runtime: RuntimeDep, principal: CurrentPrincipal
) -> Auditor:
    return auditor_for(request, runtime, principal)


AuditorDep = Annotated[Auditor, Depends(get_auditor)]


def host_auditor(request: Request, runtime: Runtime) -> Auditor:
    """For requests with nobody signed in yet (logins): recorded in the host's tenant."""
    tenant = host_tenant(request)
    return Auditor(runtime.system_sessions, tenant.id, "anonymous", "", origin_of(request))


def check_step_up(principal: Principal, tenant_settings: dict[str, Any] | None) -> None:
    """Fresh MFA before a sensitive action (terminal, approving a high-risk command), as the
    tenant's `step_up` setting says. Raises 403 `step_up_required` / `mfa_required`."""
    policy = security_settings(tenant_settings)
    if policy.step_up is StepUp.OFF:
        return
    if not principal.mfa_enabled:
        if policy.step_up is StepUp.REQUIRED:
            raise PermissionDenied(
                "set up two-factor authentication to do this", code="mfa_required"
            )
        return
    max_age = timedelta(seconds=policy.step_up_max_age_s)
    if principal.mfa_at is None or utcnow() - principal.mfa_at > max_age:
        raise PermissionDenied("confirm with a fresh two-factor code", code="step_up_required")
