"""Console sign-in and sign-out. The session cookie holds the API's own access token.

On a tenant's host (`<slug>.<base domain>`) the form signs in to that tenant. On the platform
host it asks which organisation, then sends the browser to that organisation's host.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.service import sign_in
from steward.server.deps import HostContextDep, RuntimeDep, SessionDep, client_address
from steward.server.errors import InvalidInput, RateLimited, Unauthorized
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import HostKind, tenant_origin
from steward.server.tenancy.service import validate_slug
from steward.server.web.page import HOME, LOGIN, Page, PageRoute, PublicPage, safe_next
from steward.server.web.security import (
    clear_session_cookie,
    is_https,
    policy_allowing_forms_to,
    set_session_cookie,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_MAX_FIELD = 1024
PLATFORM_HOME = "/platform"
PLATFORM_LOGIN = "/platform/login"


@router.get("/")
async def home(host: HostContextDep) -> Response:
    target = PLATFORM_HOME if host.kind is HostKind.PLATFORM else HOME
    return RedirectResponse(target, status_code=303)


@router.get("/login")
async def login_form(
    page: PublicPage,
    host: HostContextDep,
    runtime: RuntimeDep,
    tenant: Annotated[str, Query(max_length=63)] = "",
    back_to: Annotated[str, Query(alias="next", max_length=2048)] = "",
) -> Response:
    if host.kind is HostKind.PLATFORM:
        return _choose_tenant(page, runtime, tenant)
    return page.render(
        "auth/login.html", host_tenant=host.tenant, email="", next=safe_next(back_to), error=None
    )


@router.post("/login")
async def login(
    page: PublicPage,
    host: HostContextDep,
    runtime: RuntimeDep,
    session: SessionDep,
    tenant: Annotated[str, Form(max_length=63)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=_MAX_FIELD)] = "",
    back_to: Annotated[str, Form(alias="next", max_length=2048)] = "",
) -> Response:
    request = page.request
    if host.kind is HostKind.PLATFORM or host.tenant is None:
        # The platform host signs no tenant user in: it sends them to their tenant's host.
        try:
            slug = validate_slug(tenant)
        except InvalidInput:
            error = page.gettext("Enter your organisation's short name.")
            return _choose_tenant(page, runtime, tenant, error=error, status_code=422)
        scheme = "https" if is_https(request) else "http"
        origin = tenant_origin(
            request.headers.get("host", ""), scheme, slug, runtime.settings.base_domain
        )
        return RedirectResponse(f"{origin}{LOGIN}", status_code=303)

    target = safe_next(back_to)

    def refused(status_code: int, message: str) -> Response:
        return page.render(
            "auth/login.html",
            status_code=status_code,
            host_tenant=host.tenant,
            email=email,
            next=target,
            error=message,
        )

    try:
        token = await sign_in(
            session,
            runtime.login_throttle,
            runtime.settings,
            address=client_address(request),
            tenant=host.tenant.slug,
            email=email,
            password=password,
        )
    except RateLimited:
        return refused(
            429, page.gettext("Too many failed sign-in attempts. Try again in a minute.")
        )
    except Unauthorized:
        # One message for every failure: it must not tell which of the two was wrong.
        return refused(401, page.gettext("Wrong e-mail or password."))
    ttl = runtime.settings.access_token_ttl_s
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, page.request, token, ttl)
    return response


def _choose_tenant(
    page: Page, runtime: Runtime, tenant: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    response = page.render(
        "auth/choose_tenant.html", status_code=status_code, tenant=tenant, error=error
    )
    # The form's answer is a redirect to the tenant's host, which `form-action` must allow.
    subdomains = f"*.{runtime.settings.base_domain.strip('.')}:*"
    response.headers["Content-Security-Policy"] = policy_allowing_forms_to(subdomains)
    return response


@router.post("/logout")
async def logout(page: PublicPage, host: HostContextDep) -> Response:
    target = PLATFORM_LOGIN if host.kind is HostKind.PLATFORM else LOGIN
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response, page.request)
    return response
