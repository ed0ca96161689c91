"""Console cookies, CSRF (double submit) and the headers every console response carries."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from steward.server.errors import PermissionDenied
from steward.server.web.i18n import LANG_COOKIE

SESSION_COOKIE = "steward_session"
CSRF_COOKIE = "steward_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600

# No inline script anywhere; inline style attributes only (Bootstrap progress bars).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def policy_allowing_forms_to(host_source: str) -> str:
    """The policy, with forms also allowed to lead to `host_source` (for the platform host's
    sign-in, which sends the browser on to the tenant's host: a form's redirect counts)."""
    return CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {host_source}"
    )


SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show live, per-user data: never from a cache, never after logout via "back".
    "Cache-Control": "no-store",
}


class CsrfFailed(PermissionDenied):
    """The form is out of date or did not come from this console."""

    code = "csrf_failed"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


async def verify_csrf(request: Request) -> None:
    """Double submit: the `steward_csrf` cookie must equal the `X-CSRF-Token` header (htmx) or
    the `csrf_token` form field. A cross-site page can send the cookie but cannot read it."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    submitted = request.headers.get(CSRF_HEADER, "")
    if not submitted and _is_form(request):
        value = (await request.form()).get(CSRF_FIELD, "")
        submitted = value if isinstance(value, str) else ""
    if (
        not expected
        or not submitted
        or not hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise CsrfFailed("the CSRF token is missing or does not match")


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def set_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", secure=is_https(request), path="/"
    )


def set_session_cookie(response: Response, request: Request, token: str, max_age_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age_s,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=is_https(request), path="/"
    )


def set_lang_cookie(response: Response, request: Request, locale: str) -> None:
    response.set_cookie(
        LANG_COOKIE,
        locale,
        max_age=_LANG_COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def add_security_headers(response: Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
