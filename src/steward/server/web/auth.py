"""Console sign-in and sign-out. The session cookie holds the API's own access token.

On a tenant's host (`<slug>.<base domain>`) the form signs in to that tenant. On the platform
host it asks which organisation, then sends the browser to that organisation's host.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.models import SessionChannel
from steward.server.accounts.security import decode_access_token
from steward.server.accounts.service import SignIn, SignInStatus, complete_mfa, sign_in
from steward.server.accounts.sessions import revoke_session
from steward.server.db.tenant_filter import bind_tenant
from steward.server.deps import HostContextDep, RuntimeDep, SessionDep, host_auditor
from steward.server.errors import InvalidInput, NotFound, RateLimited, StewardError, Unauthorized
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import HostKind, tenant_origin
from steward.server.tenancy.service import validate_slug
from steward.server.web.page import (
    HOME,
    LOGIN,
    Page,
    PageRoute,
    PublicPage,
    mfa_setup_url,
    safe_next,
)
from steward.server.web.security import (
    SESSION_COOKIE,
    clear_session_cookie,
    is_https,
    policy_allowing_forms_to,
    set_session_cookie,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

_MAX_FIELD = 1024
PLATFORM_HOME = "/platform"
PLATFORM_LOGIN = "/platform/login"
LOGIN_MFA = "/login/mfa"
# Between the password and the code: the short-lived challenge, and where to go afterwards.
MFA_COOKIE = "steward_mfa"


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
        result = await sign_in(
            session,
            runtime.lockout,
            runtime.settings,
            host_auditor(request, runtime),
            tenant_slug=host.tenant.slug,
            email=email,
            password=password,
            channel=SessionChannel.CONSOLE,
        )
    except RateLimited:
        return refused(
            429, page.gettext("Too many failed sign-in attempts. Try again in a minute.")
        )
    except Unauthorized:
        # One message for every failure: it must not tell which of the two was wrong.
        return refused(401, page.gettext("Wrong e-mail or password."))
    if result.status is SignInStatus.MFA_REQUIRED and result.mfa_token:
        response = RedirectResponse(LOGIN_MFA, status_code=303)
        _set_mfa_cookie(response, page, f"{result.mfa_token} {target}")
        return response
    return _signed_in(page, result, target)


def _signed_in(page: Page, result: SignIn, target: str) -> Response:
    """The session cookie, and on to the page asked for (or to MFA set-up when required)."""
    assert result.access_token is not None
    if result.status is SignInStatus.MFA_SETUP_REQUIRED:
        target = mfa_setup_url(target)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, page.request, result.access_token, result.expires_in)
    response.delete_cookie(MFA_COOKIE, path=LOGIN_MFA)
    return response


def _set_mfa_cookie(response: Response, page: Page, value: str) -> None:
    response.set_cookie(
        MFA_COOKIE,
        value,
        max_age=300,
        httponly=True,
        samesite="strict",
        secure=is_https(page.request),
        path=LOGIN_MFA,
    )


@router.get(LOGIN_MFA)
async def login_mfa_form(page: PublicPage, host: HostContextDep) -> Response:
    if host.tenant is None:
        raise NotFound()
    if not page.request.cookies.get(MFA_COOKIE):
        return RedirectResponse(LOGIN, status_code=303)
    return page.render("auth/mfa.html", host_tenant=host.tenant, error=None)


@router.post(LOGIN_MFA)
async def login_mfa(
    page: PublicPage,
    host: HostContextDep,
    runtime: RuntimeDep,
    session: SessionDep,
    code: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if host.tenant is None:
        raise NotFound()
    mfa_token, _, target = page.request.cookies.get(MFA_COOKIE, "").partition(" ")
    if not mfa_token:
        return RedirectResponse(LOGIN, status_code=303)
    try:
        result = await complete_mfa(
            session,
            runtime.lockout,
            runtime.settings,
            host_auditor(page.request, runtime),
            tenant_id=host.tenant.id,
            mfa_token=mfa_token,
            code=code,
        )
    except RateLimited:
        message = page.gettext("Too many wrong codes. Try again in a minute.")
        return page.render("auth/mfa.html", status_code=429, host_tenant=host.tenant, error=message)
    except Unauthorized as exc:
        if exc.code != "invalid_code":  # the challenge expired: start again
            return RedirectResponse(LOGIN, status_code=303)
        message = page.gettext("That code is not valid. Try the current one.")
        return page.render("auth/mfa.html", status_code=401, host_tenant=host.tenant, error=message)
    return _signed_in(page, result, safe_next(target))


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
async def logout(
    page: PublicPage, host: HostContextDep, runtime: RuntimeDep, session: SessionDep
) -> Response:
    target = PLATFORM_LOGIN if host.kind is HostKind.PLATFORM else LOGIN
    token = page.request.cookies.get(SESSION_COOKIE, "")
    if host.tenant is not None and token:
        await _end_session(page, runtime, session, host.tenant.id, token)
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response, page.request)
    return response


async def _end_session(
    page: Page, runtime: Runtime, session: SessionDep, tenant_id: object, token: str
) -> None:
    """Revoke the cookie's session, so that a copy of the cookie is worthless too."""
    try:
        claims = decode_access_token(runtime.settings.effective_secret_key, token)
        if claims.tenant_id != tenant_id:
            return
        bind_tenant(session, claims.tenant_id)
        await revoke_session(session, claims.user_id, claims.session_id, "logout")
        await session.commit()
    except StewardError:
        return  # already ended or not valid: nothing to revoke
    auditor = host_auditor(page.request, runtime).as_actor(f"user:{claims.user_id}", "")
    await auditor("logout", detail={"session": str(claims.session_id)})
