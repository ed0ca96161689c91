"""Console sign-in and sign-out. The session cookie holds the API's own access token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.security import AccessClaims, issue_access_token
from steward.server.accounts.service import authenticate
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import RateLimited, Unauthorized
from steward.server.web.page import HOME, LOGIN, PageRoute, PublicPage, safe_next
from steward.server.web.security import clear_session_cookie, set_session_cookie

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_MAX_FIELD = 1024


@router.get("/")
async def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
async def login_form(
    page: PublicPage,
    tenant: Annotated[str, Query(max_length=63)] = "",
    back_to: Annotated[str, Query(alias="next", max_length=2048)] = "",
) -> Response:
    return page.render(
        "auth/login.html", tenant=tenant, email="", next=safe_next(back_to), error=None
    )


@router.post("/login")
async def login(
    page: PublicPage,
    runtime: RuntimeDep,
    session: SessionDep,
    tenant: Annotated[str, Form(max_length=63)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=_MAX_FIELD)] = "",
    back_to: Annotated[str, Form(alias="next", max_length=2048)] = "",
) -> Response:
    target = safe_next(back_to)
    request = page.request
    address = request.client.host if request.client else "unknown"
    try:
        runtime.login_throttle.check(address, tenant, email)
    except RateLimited:
        return page.render(
            "auth/login.html",
            status_code=429,
            tenant=tenant,
            email=email,
            next=target,
            error=page.gettext("Too many failed sign-in attempts. Try again in a minute."),
        )
    try:
        if not (tenant.strip() and email.strip() and password):
            raise Unauthorized("incomplete credentials", code="invalid_credentials")
        tenant_row, user = await authenticate(session, tenant, email, password)
    except Unauthorized:
        runtime.login_throttle.failed(address, tenant, email)
        # One message for every failure: it must not tell which of the three was wrong.
        return page.render(
            "auth/login.html",
            status_code=401,
            tenant=tenant,
            email=email,
            next=target,
            error=page.gettext("Wrong tenant, e-mail or password."),
        )
    ttl = runtime.settings.access_token_ttl_s
    token = issue_access_token(
        runtime.settings.effective_secret_key,
        AccessClaims(
            user_id=user.id, tenant_id=tenant_row.id, tenant_slug=tenant_row.slug, role=user.role
        ),
        ttl,
    )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, page.request, token, ttl)
    return response


@router.post("/logout")
async def logout(page: PublicPage) -> Response:
    response = RedirectResponse(LOGIN, status_code=303)
    clear_session_cookie(response, page.request)
    return response
