"""Adding a device: make an enrollment PIN and show the commands to run on the machine."""

from __future__ import annotations

import shlex
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response
from pydantic import ValidationError

from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.devices.enrollment import create_pin
from steward.server.devices.schemas import PinCreate
from steward.server.errors import InvalidInput, NotFound
from steward.server.tenancy.service import get_tenant
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Enroller = Annotated[Page, require_page(P.AGENT_ENROLL)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TTL_CHOICES = (
    (600, N_("10 minutes")),
    (3600, N_("1 hour")),
    (24 * 3600, N_("24 hours")),
    (7 * 24 * 3600, N_("7 days")),
)


def _form(page: Page, *, group: str, ttl_s: int, error: str | None, status: int = 200) -> Response:
    choices = [(seconds, page.gettext(label)) for seconds, label in TTL_CHOICES]
    if ttl_s not in {seconds for seconds, _ in choices}:
        ttl_s = TTL_CHOICES[0][0]
    return page.render(
        "enroll/form.html",
        status_code=status,
        group=group,
        ttl_s=ttl_s,
        ttl_choices=choices,
        error=error,
    )


def public_url(page: Page, configured: str) -> str:
    """Where agents reach this server: the configured URL, else the one this page was asked at."""
    return (configured or str(page.request.base_url)).rstrip("/")


@router.get("/devices/enroll")
async def enroll_form(page: Enroller, runtime: RuntimeDep) -> Response:
    return _form(page, group="", ttl_s=runtime.settings.pin_ttl_s, error=None)


@router.post("/devices/enroll")
async def make_pin(
    page: Enroller,
    session: SessionDep,
    runtime: RuntimeDep,
    group: Annotated[str, Form()] = "",
    ttl_s: Annotated[str, Form()] = "",
) -> Response:
    try:
        request = PinCreate.model_validate({"group": group.strip() or None, "ttl_s": ttl_s})
    except ValidationError:
        error = page.gettext(
            "Pick a validity from the list and a group name of at most 100 characters."
        )
        return _form(page, group=group, ttl_s=600, error=error, status=422)
    assert page.principal is not None  # require_page guarantees a signed-in user
    ttl = request.ttl_s or runtime.settings.pin_ttl_s
    tenant = await get_tenant(session, page.principal.tenant_id)
    try:
        pin, row, group_row = await create_pin(
            session,
            runtime.settings.effective_secret_key,
            tenant,
            group_name=request.group,
            ttl_s=ttl,
            created_by=page.principal.email,
        )
    except (NotFound, InvalidInput):
        error = page.gettext("There is no group with this name.")
        return _form(page, group=group, ttl_s=ttl, error=error, status=422)
    await session.commit()
    await auditor_for(page.request, runtime, page.me)(
        "pin.create", risk="medium", detail={"group": group_row.name, "pin_id": str(row.id)}
    )
    server = shlex.quote(public_url(page, runtime.settings.public_url))
    return page.render(
        "enroll/pin.html",
        pin=pin,
        expires_at=row.expires_at,
        group=group_row.name,
        enroll_command=f"steward-agent enroll --server {server} --pin {pin}",
        run_command="steward-agent run",
    )
