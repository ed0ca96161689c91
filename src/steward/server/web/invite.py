"""The one-time sign-up link of an invited user: choose a password, then sign in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts import invitations
from steward.server.accounts import lockout as lk
from steward.server.accounts.models import User
from steward.server.accounts.policy import security_settings
from steward.server.db.tenant_filter import bind_tenant
from steward.server.deps import HostContextDep, RuntimeDep, SessionDep, host_auditor
from steward.server.errors import InvalidInput, NotFound
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import HostContext
from steward.server.tenancy.service import get_tenant
from steward.server.web.page import LOGIN, Page, PageRoute, PublicPage

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = invitations.INVITE_PATH + "{secret}"


async def _invited(
    page: Page, host: HostContext, runtime: Runtime, session: SessionDep, secret: str
) -> User:
    """The invited user of this host's tenant; a wrong link counts against the address."""
    if host.tenant is None:
        raise NotFound()
    key = lk.address_key(page.request.client.host if page.request.client else "unknown")
    await runtime.lockout.check([key])
    bind_tenant(session, host.tenant.id)
    try:
        return await invitations.find(session, secret[:200])
    except NotFound:
        await session.rollback()  # free the connection for the lock-out's own transaction
        await runtime.lockout.failed([(key, lk.ADDRESS)])
        raise


@router.get(URL)
async def invitation(
    secret: str, page: PublicPage, host: HostContextDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    user = await _invited(page, host, runtime, session, secret)
    return page.render("auth/invite.html", host_tenant=host.tenant, email=user.email, error=None)


@router.post(URL)
async def accept(
    secret: str,
    page: PublicPage,
    host: HostContextDep,
    runtime: RuntimeDep,
    session: SessionDep,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    user = await _invited(page, host, runtime, session, secret)
    policy = security_settings((await get_tenant(session, user.tenant_id)).settings)
    try:
        await invitations.accept(user, password, policy)
    except InvalidInput:
        message = page.gettext(
            "Choose a password of at least %(length)d characters that is not easy to guess.",
            length=policy.password_min_length,
        )
        return page.render(
            "auth/invite.html", status_code=422, host_tenant=host.tenant, email=user.email,
            error=message,
        )  # fmt: skip
    await session.commit()
    auditor = host_auditor(page.request, runtime).as_actor(f"user:{user.id}", user.email)
    await auditor("user.invite_accepted", risk="medium", target=f"user:{user.id}")
    return RedirectResponse(LOGIN, status_code=303)
