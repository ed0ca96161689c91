"""Device groups: the list with device counts, create, rename, delete, and moving a device."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.devices.service import get_device
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.runtime import Runtime
from steward.server.tenancy import groups as service
from steward.server.tenancy.models import DEFAULT_GROUP
from steward.server.tenancy.service import get_group
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Manager = Annotated[Page, require_page(P.DEVICE_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

NO_GROUP = N_("There is no group with this name.")
# Service error code -> what to tell the user.
ERRORS = {
    "invalid_group": N_(
        'A group name is 1 to 100 characters, without slashes, and not "." or "..".'
    ),
    "group_exists": N_("A group with this name already exists."),
    "default_group": N_("The default group cannot be renamed or deleted."),
    "group_not_empty": N_(
        "This group still has devices. Choose the group they move to, then delete it."
    ),
    "same_group": N_("Devices cannot move to the group being deleted."),
    "group_not_found": NO_GROUP,
}
DONE = {
    "created": N_("The group was created."),
    "renamed": N_("The group was renamed."),
    "deleted": N_("The group was deleted."),
}
GroupName = Annotated[str, Form(max_length=1000)]


def _tenant_id(page: Page) -> uuid.UUID:
    assert page.principal is not None  # require_page guarantees a signed-in user
    return page.principal.tenant_id


async def _list(
    page: Page,
    session: AsyncSession,
    *,
    done: str = "",
    error: Conflict | InvalidInput | None = None,
    new_name: str = "",
) -> Response:
    status = 200
    message = None
    if error is not None:
        status = error.status_code
        message = page.gettext(ERRORS.get(error.code, N_("Some of the values sent are not valid.")))
    return page.render(
        "groups/list.html",
        status_code=status,
        groups=await service.list_groups(session, _tenant_id(page)),
        default_group=DEFAULT_GROUP,
        done=page.gettext(DONE[done]) if done in DONE else None,
        error=message,
        new_name=new_name,
    )


@router.get("/groups")
async def group_list(
    page: Viewer, session: SessionDep, done: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    return await _list(page, session, done=done)


@router.post("/groups")
async def create_group(
    page: Manager, session: SessionDep, runtime: RuntimeDep, name: GroupName = ""
) -> Response:
    try:
        await service.create_group(session, _tenant_id(page), name)
    except (Conflict, InvalidInput) as exc:
        return await _list(page, session, error=exc, new_name=name)
    await session.commit()
    await _audit(page, runtime, "group.create", name=name.strip())
    return RedirectResponse("/groups?done=created", status_code=303)


@router.post("/groups/{name}/rename")
async def rename_group(
    name: str, page: Manager, session: SessionDep, runtime: RuntimeDep, new_name: GroupName = ""
) -> Response:
    tenant_id = _tenant_id(page)
    await get_group(session, tenant_id, name)  # another tenant's group, or none: 404
    try:
        await service.rename_group(session, tenant_id, name, new_name)
    except (Conflict, InvalidInput) as exc:
        return await _list(page, session, error=exc)
    await session.commit()
    await _audit(page, runtime, "group.rename", name=name, new_name=new_name.strip())
    return RedirectResponse("/groups?done=renamed", status_code=303)


@router.post("/groups/{name}/delete")
async def delete_group(
    name: str, page: Manager, session: SessionDep, runtime: RuntimeDep, move_to: GroupName = ""
) -> Response:
    tenant_id = _tenant_id(page)
    await get_group(session, tenant_id, name)  # another tenant's group, or none: 404
    try:
        # From here a missing group can only be the target the devices move to.
        await service.delete_group(session, tenant_id, name, move_to=move_to or None)
    except NotFound:
        return await _list(page, session, error=InvalidInput(code="group_not_found"))
    except (Conflict, InvalidInput) as exc:
        return await _list(page, session, error=exc)
    await session.commit()
    await _audit(page, runtime, "group.delete", risk="medium", name=name, move_to=move_to)
    return RedirectResponse("/groups?done=deleted", status_code=303)


async def _audit(
    page: Page, runtime: Runtime, action: str, risk: str = "low", **detail: str
) -> None:
    await auditor_for(page.request, runtime, page.me)(action, risk=risk, detail=detail)


@router.post("/devices/{device_id}/group")
async def move_device(
    device_id: uuid.UUID, page: Manager, session: SessionDep, group: GroupName = ""
) -> Response:
    # Another tenant's device, one outside the user's scope, or none: 404.
    await get_device(session, page.me, device_id, P.DEVICE_MANAGE)
    try:
        await service.move_device(session, device_id, group)
    except NotFound:
        return page.render(
            "errors/error.html",
            status_code=422,
            status_code_shown=422,
            title=page.gettext("Invalid request"),
            message=page.gettext(NO_GROUP),
        )
    await session.commit()
    return RedirectResponse(f"/devices/{device_id}", status_code=303)
