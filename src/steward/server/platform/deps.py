"""Who may use the platform routes: a platform administrator, on the platform host only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from steward.server.accounts.security import decode_platform_token
from steward.server.deps import RuntimeDep, SystemSessionDep, bearer_token, host_context
from steward.server.errors import NotFound
from steward.server.platform.service import PlatformPrincipal, load_platform_principal
from steward.server.tenancy.hosts import HostKind


async def require_platform_host(request: Request) -> None:
    """Platform routes do not exist on a tenant's host (404, like any unknown page)."""
    if host_context(request).kind is not HostKind.PLATFORM:
        raise NotFound()


PlatformHost = Annotated[None, Depends(require_platform_host)]


async def get_platform_admin(
    request: Request, _host: PlatformHost, runtime: RuntimeDep, session: SystemSessionDep
) -> PlatformPrincipal:
    admin_id = decode_platform_token(runtime.settings.effective_secret_key, bearer_token(request))
    return await load_platform_principal(session, admin_id)


PlatformAdminDep = Annotated[PlatformPrincipal, Depends(get_platform_admin)]
