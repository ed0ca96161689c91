"""The organisation's profile: everyone who sees devices reads it, administrators change it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.models import Role
from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.errors import InvalidInput, PermissionDenied
from steward.server.tenancy.hosts import announce_tenant_change
from steward.server.tenancy.models import Tenant
from steward.server.tenancy.service import PROFILE_FIELDS, update_tenant
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Admin = Annotated[Page, require_page(P.TENANT_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/settings/organisation"
FIELDS = ("name", "locale", "timezone", *PROFILE_FIELDS)
# Offered in the time zone field; any other IANA name may be typed (the service checks it).
COMMON_TIMEZONES = (
    "Asia/Seoul",
    "UTC",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Kolkata",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Australia/Sydney",
)
# Service error code -> (the field it concerns, what to tell the user).
ERRORS = {
    "invalid_name": ("name", N_("Enter a display name of 1 to 200 characters.")),
    "invalid_locale": ("locale", N_("Pick a language from the list.")),
    "invalid_timezone": (
        "timezone",
        N_("Unknown time zone. Use an IANA name such as Asia/Seoul or UTC."),
    ),
    "invalid_email": ("contact_email", N_("Enter a valid e-mail address.")),
    "invalid_profile": (
        "",
        N_(
            "Check the business registration number (letters, digits, spaces, '.', '/' or '-'), "
            "the phone number (digits, spaces, '+', '-', '.' or parentheses) and the lengths "
            "of the fields."
        ),
    ),
}


def _values(tenant: Tenant) -> dict[str, str]:
    return {field: str(getattr(tenant, field) or "") for field in FIELDS}


def _form(
    page: Page,
    values: dict[str, str],
    *,
    saved: bool = False,
    error: str | None = None,
    error_field: str = "",
    status: int = 200,
) -> Response:
    return page.render(
        "settings/organisation.html",
        status_code=status,
        values=values,
        saved=saved,
        error=error,
        error_field=error_field,
        timezones=COMMON_TIMEZONES,
        max_lengths={"name": 200, "timezone": 64, **PROFILE_FIELDS},
    )


@router.get(URL)
async def organisation(page: Viewer, saved: Annotated[str, Query(max_length=8)] = "") -> Response:
    assert page.tenant is not None  # a signed-in page has the tenant
    if page.me.role is Role.CUSTOMER:  # customers see their requests and devices, no more
        raise PermissionDenied("customers cannot see the organisation profile", code="forbidden")
    return _form(page, _values(page.tenant), saved=saved == "1")


@router.post(URL)
async def save_organisation(
    page: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    name: Annotated[str, Form()] = "",
    locale: Annotated[str, Form()] = "",
    timezone: Annotated[str, Form()] = "",
    business_registration_number: Annotated[str, Form()] = "",
    contact_name: Annotated[str, Form()] = "",
    contact_phone: Annotated[str, Form()] = "",
    contact_email: Annotated[str, Form()] = "",
    address: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
) -> Response:
    assert page.tenant is not None  # a signed-in page has the tenant
    values = {
        "name": name,
        "locale": locale,
        "timezone": timezone.strip(),
        "business_registration_number": business_registration_number,
        "contact_name": contact_name,
        "contact_phone": contact_phone,
        "contact_email": contact_email,
        "address": address,
        "notes": notes,
    }
    try:
        # Every value is checked before any is set: a refused form changes nothing.
        await update_tenant(session, page.tenant.slug, **values)
    except InvalidInput as exc:
        field, message = ERRORS.get(exc.code, ("", N_("Some of the values sent are not valid.")))
        return _form(
            page, values, error=page.gettext(message), error_field=field, status=exc.status_code
        )
    await session.commit()
    await announce_tenant_change(runtime.bus, page.tenant.slug)
    await auditor_for(page.request, runtime, page.me)(
        "settings.organisation", risk="medium", detail={"fields": sorted(values)}
    )
    return RedirectResponse(f"{URL}?saved=1", status_code=303)
