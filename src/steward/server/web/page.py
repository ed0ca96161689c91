"""The request context of a console page, its dependencies, and the page route class.

Every console route uses `PageRoute`, which in one place: checks CSRF on unsafe methods, turns
domain errors into pages (401 -> login, 403/404 -> friendly pages), sets the cookies the page
needs and adds the security headers.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal
from steward.server.deps import (
    RuntimeDep,
    SessionDep,
    authorize_or_record,
    principal_from_token,
)
from steward.server.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StewardError,
    Unauthorized,
)
from steward.server.tenancy.models import Tenant
from steward.server.web.i18n import LANG_PARAM, LANGUAGE_NAMES, choose_locale, translations
from steward.server.web.security import (
    CSRF_COOKIE,
    SAFE_METHODS,
    SESSION_COOKIE,
    CsrfFailed,
    add_security_headers,
    clear_session_cookie,
    new_csrf_token,
    set_csrf_cookie,
    set_lang_cookie,
    verify_csrf,
)
from steward.server.web.templating import Templates

HOME = "/devices"
LOGIN = "/login"
PLATFORM_PREFIX = "/platform"
PLATFORM_LOGIN = "/platform/login"
MFA_SETUP = "/account/mfa"  # where a session that must set up MFA is sent (and may go)


@dataclass
class Page:
    """Who is looking, in which language and time zone; renders templates for them."""

    request: Request
    templates: Templates
    locale: str
    remember_locale: bool
    csrf_token: str
    csrf_is_new: bool
    principal: Principal | None = None
    tenant: Tenant | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    @property
    def me(self) -> Principal:
        """The signed-in user (pages behind `require_page` always have one)."""
        if self.principal is None:
            raise Unauthorized("sign in to use the console", code="login_required")
        return self.principal

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    def gettext(self, message: str, **variables: object) -> str:
        text = translations(self.locale).gettext(message)
        return text % variables if variables else text

    def can(self, permission: str) -> bool:
        return self.principal is not None and self.principal.can(permission)

    def lang_url(self, locale: str) -> str:
        url = self.request.url.include_query_params(**{LANG_PARAM: locale})
        return f"{url.path}?{url.query}"

    def render(
        self,
        template: str,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        values = {
            "page": self,
            "request": self.request,
            "tz": self.tz,
            "principal": self.principal,
            "tenant": self.tenant,
            "languages": LANGUAGE_NAMES,
            "admin": None,  # a platform administrator, on platform pages
            "platform": False,
            **context,
        }
        html = self.templates.render(self.locale, template, values)
        return HTMLResponse(html, status_code=status_code, headers=headers)

    def finish(self, response: Response) -> None:
        """Cookies this page needs: a CSRF token (first visit) and a language picked by `?lang`."""
        if self.csrf_is_new:
            set_csrf_cookie(response, self.request, self.csrf_token)
        if self.remember_locale:
            set_lang_cookie(response, self.request, self.locale)


def build_page(
    request: Request, principal: Principal | None = None, tenant: Tenant | None = None
) -> Page:
    locale, remember = choose_locale(
        request, principal.locale if principal else None, tenant.locale if tenant else None
    )
    token = request.cookies.get(CSRF_COOKIE, "")
    is_new = not (20 <= len(token) <= 100)
    page = Page(
        request=request,
        templates=request.app.state.console_templates,
        locale=locale,
        remember_locale=remember,
        csrf_token=new_csrf_token() if is_new else token,
        csrf_is_new=is_new,
        principal=principal,
        tenant=tenant,
        tz=_zone(tenant.timezone if tenant else None, request),
    )
    request.state.page = page
    return page


def _zone(name: str | None, request: Request) -> ZoneInfo:
    default = request.app.state.runtime.settings.default_timezone
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")  # pragma: no cover


# ---- dependencies ----------------------------------------------------------------------------


async def public_page(request: Request) -> Page:
    return build_page(request)


async def signed_in_page(request: Request, runtime: RuntimeDep, session: SessionDep) -> Page:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("sign in to use the console", code="login_required")
    # From here on every query of this request sees only the principal's tenant.
    principal, tenant = await principal_from_token(
        request, runtime, session, token, allow_setup=request.url.path.startswith(MFA_SETUP)
    )
    return build_page(request, principal, tenant)


PublicPage = Annotated[Page, Depends(public_page)]
SignedInPage = Annotated[Page, Depends(signed_in_page)]


def require_page(permission: Permission) -> Any:
    """`Annotated[Page, require_page(P.DEVICE_VIEW)]`: the page, if role, scope and time window
    allow it (the same `authorize` as the API)."""

    async def check(page: SignedInPage, runtime: RuntimeDep) -> Page:
        if page.principal is None:
            raise PermissionDenied(f"you may not {permission.value}", code="forbidden")
        await authorize_or_record(page.request, runtime, page.principal, permission)
        return page

    check.permission = permission  # type: ignore[attr-defined]  # for the permission tests
    return Depends(check)


# ---- the route class -------------------------------------------------------------------------


class PageRoute(APIRoute):
    """Console routes: CSRF on unsafe methods, errors as pages, cookies and security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS:
                    await verify_csrf(request)
                response = await handler(request)
            except StewardError as exc:
                response = error_response(request, exc)
            except RequestValidationError as exc:
                invalid_path = any((e.get("loc") or ("",))[0] == "path" for e in exc.errors())
                response = error_response(request, NotFound() if invalid_path else InvalidInput())
            page: Page | None = getattr(request.state, "page", None)
            if page is not None:
                page.finish(response)
            add_security_headers(response)
            return response

        return handle


def safe_next(target: str | None) -> str:
    """A local path to go back to after login; anything else (other sites) becomes home."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return HOME
    if any(ord(ch) < 32 for ch in target) or urlsplit(target).netloc:
        return HOME
    return target


def mfa_setup_url(target: str) -> str:
    """Set up MFA first, then on to `target`."""
    target = safe_next(target)
    return MFA_SETUP if target == HOME else f"{MFA_SETUP}?{urlencode({'next': target})}"


def login_url(request: Request) -> str:
    if request.url.path.startswith(PLATFORM_PREFIX):
        return PLATFORM_LOGIN
    back = login_url_target(request)
    return LOGIN if back == HOME else f"{LOGIN}?{urlencode({'next': back})}"


def login_url_target(request: Request) -> str:
    """The page to come back to after signing in (home when there is none)."""
    if request.headers.get("hx-request") == "true":
        current = urlsplit(request.headers.get("hx-current-url", ""))
        back = current.path + (f"?{current.query}" if current.query else "")
    elif request.method == "GET":
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        back = ""
    return safe_next(back)


def error_response(request: Request, exc: StewardError) -> Response:
    page: Page = getattr(request.state, "page", None) or build_page(request)
    if isinstance(exc, Unauthorized):
        response = _redirect(page, login_url(request), status_code=401)
        if request.cookies.get(SESSION_COOKIE):
            clear_session_cookie(response, request)
        return response
    if isinstance(exc, PermissionDenied) and exc.code == "mfa_setup_required":
        return _redirect(page, mfa_setup_url(login_url_target(request)))
    title, message = _describe(page, exc)
    template = "errors/_alert.html" if page.is_htmx else "errors/error.html"
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return page.render(
        template,
        status_code=exc.status_code,
        headers=headers,
        code=exc.code,
        status_code_shown=exc.status_code,
        title=title,
        message=message,
    )


def _redirect(page: Page, target: str, status_code: int = 303) -> Response:
    if page.is_htmx:  # htmx follows this header with a full page load
        return Response(status_code=status_code, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _describe(page: Page, exc: StewardError) -> tuple[str, str]:
    _ = page.gettext
    if isinstance(exc, CsrfFailed):
        return _("Request refused"), _(
            "This form has expired or did not come from this console. "
            "Reload the page and try again."
        )
    if isinstance(exc, PermissionDenied) and exc.code == "outside_time_window":
        return _("Access denied"), _("This is outside the hours you may act in.")
    if isinstance(exc, PermissionDenied) and exc.code == "step_up_required":
        return _("Confirm it is you"), _("Confirm with a fresh code from your authenticator app.")
    if isinstance(exc, PermissionDenied):
        return _("Access denied"), _("Your role does not allow this. Ask an administrator.")
    if isinstance(exc, NotFound):
        return _("Not found"), _("This page does not exist, or you cannot see it.")
    if isinstance(exc, RateLimited):
        return _("Too many attempts"), _("Wait a minute and try again.")
    if isinstance(exc, InvalidInput):
        return _("Invalid request"), _("Some of the values sent are not valid.")
    return _("Something went wrong"), _("The request could not be completed. Try again.")
