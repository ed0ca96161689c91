"""The tenant's security settings (for holders of `tenant.manage`): MFA requirement, step-up,
session timeouts, password length and the IP allow-list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts import actions
from steward.server.accounts.models import Role
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.policy import (
    MfaRequirement,
    SecuritySettings,
    StepUp,
    security_settings,
)
from steward.server.deps import RuntimeDep, SessionDep, client_address
from steward.server.errors import Conflict
from steward.server.tenancy.models import Tenant
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Admin = Annotated[Page, require_page(P.TENANT_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/settings/security"
# Field -> what to tell the user when its value is refused.
FIELD_ERRORS = {
    "mfa_required": N_("Pick who must use two-factor authentication."),
    "mfa_roles": N_("Pick roles from the list."),
    "step_up": N_("Pick a step-up rule from the list."),
    "step_up_max_age_s": N_("Enter a number of seconds from 30 to 3600."),
    "session_idle_timeout_min": N_("Enter a number of minutes from 5 to 1440."),
    "session_lifetime_h": N_("Enter a number of hours from 1 to 720."),
    "password_min_length": N_("Enter a length from 10 to 128 characters."),
    "ip_allowlist": N_(
        "Enter one IP network per line, e.g. 203.0.113.0/24 or 2001:db8::/32 (at most 200)."
    ),
}
WOULD_LOCK_OUT = N_(
    "This allow-list would lock you out: you are connecting from %(address)s. "
    "Add a network that contains it, or leave the list empty."
)


def _form(
    page: Page,
    values: dict[str, Any],
    *,
    saved: bool = False,
    error: str | None = None,
    error_field: str = "",
    status: int = 200,
) -> Response:
    return page.render(
        "settings/security.html",
        status_code=status,
        values=values,
        saved=saved,
        error=error,
        error_field=error_field,
        roles=list(Role),
        address=client_address(page.request),
    )


async def _tenant(page: Page, session: AsyncSession) -> Tenant:
    assert page.principal is not None  # require_page guarantees a signed-in user
    tenant = await session.scalar(select(Tenant).where(Tenant.id == page.principal.tenant_id))
    assert tenant is not None
    return tenant


def _values(settings: SecuritySettings) -> dict[str, Any]:
    values = settings.model_dump(mode="json")
    values["ip_allowlist"] = "\n".join(settings.ip_allowlist)
    return values


@router.get(URL)
async def security(
    page: Admin, session: SessionDep, saved: Annotated[str, Query(max_length=8)] = ""
) -> Response:
    tenant = await _tenant(page, session)
    return _form(page, _values(security_settings(tenant.settings)), saved=saved == "1")


@router.post(URL)
async def save_security(
    page: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    mfa_required: Annotated[str, Form(max_length=16)] = MfaRequirement.OFF.value,
    mfa_roles: Annotated[list[str] | None, Form(max_length=len(Role))] = None,
    step_up: Annotated[str, Form(max_length=16)] = StepUp.IF_ENROLLED.value,
    step_up_max_age_s: Annotated[str, Form(max_length=12)] = "300",
    session_idle_timeout_min: Annotated[str, Form(max_length=12)] = "60",
    session_lifetime_h: Annotated[str, Form(max_length=12)] = "12",
    password_min_length: Annotated[str, Form(max_length=12)] = "10",  # noqa: S107  # a length
    ip_allowlist: Annotated[str, Form(max_length=20_000)] = "",
    approval_for_high_risk: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    values: dict[str, Any] = {
        "approval_for_high_risk": bool(approval_for_high_risk),
        "mfa_required": mfa_required,
        "mfa_roles": list(mfa_roles or []),
        "step_up": step_up,
        "step_up_max_age_s": step_up_max_age_s.strip(),
        "session_idle_timeout_min": session_idle_timeout_min.strip(),
        "session_lifetime_h": session_lifetime_h.strip(),
        "password_min_length": password_min_length.strip(),
        "ip_allowlist": ip_allowlist,
    }
    raw = {
        **values,
        "ip_allowlist": [line.strip() for line in ip_allowlist.splitlines() if line.strip()],
    }
    try:
        settings = SecuritySettings.model_validate(raw)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        message = page.gettext(
            FIELD_ERRORS.get(field, N_("Some of the values sent are not valid."))
        )
        return _form(page, values, error=message, error_field=field, status=422)
    tenant = await _tenant(page, session)
    address = client_address(page.request)
    try:
        await actions.save_security_settings(
            session, page_auditor(page, runtime), runtime, tenant, settings, address=address
        )
    except Conflict as exc:
        if exc.code != "would_lock_out":
            raise
        message = page.gettext(WOULD_LOCK_OUT, address=address)
        return _form(
            page, values, error=message, error_field="ip_allowlist", status=exc.status_code
        )
    return RedirectResponse(f"{URL}?saved=1", status_code=303)
