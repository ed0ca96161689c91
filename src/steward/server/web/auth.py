"""Console sign-in and sign-out. The session cookie holds the API's own access token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.service import sign_in
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

    def refused(status_code: int, message: str) -> Response:
        return page.render(
            "auth/login.html",
            status_code=status_code,
            tenant=tenant,
            email=email,
            next=target,
            error=message,
        )

    try:
        token = await sign_in(
            session,
            runtime.login_throttle,
            runtime.settings,
            address=request.client.host if request.client else "unknown",
            tenant=tenant,
            email=email,
            password=password,
        )
    except RateLimited:
        return refused(
            429, page.gettext("Too many failed sign-in attempts. Try again in a minute.")
        )
    except Unauthorized:
        # One message for every failure: it must not tell which of the three was wrong.
        return refused(401, page.gettext("Wrong tenant, e-mail or password."))
    ttl = runtime.settings.access_token_ttl_s
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, page.request, token, ttl)
    return response


@router.post("/logout")
async def logout(page: PublicPage) -> Response:
    response = RedirectResponse(LOGIN, status_code=303)
    clear_session_cookie(response, page.request)
    return response
