"""The platform console, on the bare base domain: platform administrators manage tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.security import decode_platform_token
from steward.server.deps import RuntimeDep, SystemSessionDep, client_address
from steward.server.errors import Conflict, InvalidInput, RateLimited, Unauthorized
from steward.server.platform.deps import require_platform_host
from steward.server.platform.service import (
    PlatformPrincipal,
    create_tenant_with_admin,
    load_platform_principal,
    platform_sign_in,
)
from steward.server.tenancy import service as tenancy
from steward.server.tenancy.hosts import announce_tenant_change, tenant_origin
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, build_page
from steward.server.web.security import SESSION_COOKIE, is_https, set_session_cookie

router = APIRouter(
    route_class=PageRoute,
    include_in_schema=False,
    dependencies=[Depends(require_platform_host)],
)

HOME = "/platform"
LOGIN = "/platform/login"
ERRORS = {
    "invalid_slug": N_("A short name is 1 to 63 lowercase letters, digits or '-'."),
    "tenant_exists": N_("An organisation with this short name already exists."),
    "invalid_name": N_("A name is 1 to 200 characters."),
    "invalid_email": N_("This is not a valid e-mail address."),
    "weak_password": N_("Passwords need at least 10 characters."),
    "invalid_timezone": N_("Unknown time zone."),
    "invalid_locale": N_("Unknown language."),
}
DONE = {
    "created": N_("The organisation was created."),
    "disabled": N_("The organisation was disabled."),
    "active": N_("The organisation was enabled."),
}


async def platform_page(
    request: Request, runtime: RuntimeDep, session: SystemSessionDep
) -> tuple[Page, PlatformPrincipal]:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthorized("sign in as a platform administrator", code="login_required")
    admin_id = decode_platform_token(runtime.settings.effective_secret_key, token)
    admin = await load_platform_principal(session, admin_id)
    return build_page(request), admin


PlatformPage = Annotated[tuple[Page, PlatformPrincipal], Depends(platform_page)]


@router.get(LOGIN)
async def login_form(request: Request) -> Response:
    return build_page(request).render("auth/login.html", platform=True, email="", error=None)


@router.post(LOGIN)
async def login(
    request: Request,
    runtime: RuntimeDep,
    session: SystemSessionDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    page = build_page(request)
    try:
        token = await platform_sign_in(
            session,
            runtime.login_throttle,
            runtime.settings,
            address=client_address(request),
            email=email,
            password=password,
        )
    except RateLimited:
        message = page.gettext("Too many failed sign-in attempts. Try again in a minute.")
        return page.render(
            "auth/login.html", platform=True, status_code=429, email=email, error=message
        )
    except Unauthorized:
        message = page.gettext("Wrong e-mail or password.")
        return page.render(
            "auth/login.html", platform=True, status_code=401, email=email, error=message
        )
    ttl = runtime.settings.access_token_ttl_s
    response = RedirectResponse(HOME, status_code=303)
    set_session_cookie(response, request, token, ttl)
    return response


async def _tenants_page(
    page: Page,
    admin: PlatformPrincipal,
    runtime: RuntimeDep,
    session: SystemSessionDep,
    *,
    done: str = "",
    error: str = "",
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    summaries = await tenancy.list_tenants(session)
    scheme = "https" if is_https(page.request) else "http"
    host = page.request.headers.get("host", "")
    base = runtime.settings.base_domain
    return page.render(
        "platform/tenants.html",
        status_code=status_code,
        admin=admin,
        summaries=summaries,
        origins={
            s.tenant.slug: tenant_origin(host, scheme, s.tenant.slug, base) for s in summaries
        },
        totals=(sum(s.devices for s in summaries), sum(s.online for s in summaries)),
        done=page.gettext(DONE[done]) if done in DONE else "",
        error=error,
        form=form or {},
        base_domain=base,
    )


@router.get(HOME)
async def tenants(
    platform: PlatformPage,
    runtime: RuntimeDep,
    session: SystemSessionDep,
    done: str = "",
) -> Response:
    page, admin = platform
    return await _tenants_page(page, admin, runtime, session, done=done[:16])


@router.post(f"{HOME}/tenants")
async def create_tenant(
    platform: PlatformPage,
    runtime: RuntimeDep,
    session: SystemSessionDep,
    slug: Annotated[str, Form(max_length=63)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    admin_email: Annotated[str, Form(max_length=254)] = "",
    admin_password: Annotated[str, Form(max_length=1024)] = "",
    locale: Annotated[str, Form(max_length=8)] = "en",
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
) -> Response:
    page, admin = platform
    try:
        tenant = await create_tenant_with_admin(
            session, slug, name, admin_email, admin_password, locale=locale, timezone=timezone
        )
    except (InvalidInput, Conflict) as exc:
        await session.rollback()
        message = page.gettext(ERRORS.get(exc.code, N_("Some of the values sent are not valid.")))
        form = {"slug": slug, "name": name, "admin_email": admin_email, "timezone": timezone}
        return await _tenants_page(
            page,
            admin,
            runtime,
            session,
            error=message,
            form=form,
            status_code=exc.status_code,
        )
    await session.commit()
    await announce_tenant_change(runtime.bus, tenant.slug)
    return RedirectResponse(f"{HOME}?done=created", status_code=303)


@router.post(HOME + "/tenants/{slug}/status")
async def change_status(
    slug: str,
    platform: PlatformPage,
    runtime: RuntimeDep,
    session: SystemSessionDep,
    status: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    tenant = await tenancy.set_tenant_status(session, slug[:63], status)
    await session.commit()
    await announce_tenant_change(runtime.bus, tenant.slug)
    return RedirectResponse(f"{HOME}?done={tenant.status}", status_code=303)
