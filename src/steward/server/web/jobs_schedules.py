"""Schedules in the console: the list (next run in the tenant's time zone, owner, last result),
enable/disable and delete. New schedules are made in the composer ("on a schedule").

Changing a schedule is for its owner or a tenant manager (jobs/schedules.py decides); anyone
else gets the list back with a notice.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import PermissionDenied
from steward.server.jobs import schedules
from steward.server.jobs.schemas import ScheduleUpdate
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Runner = Annotated[Page, require_page(P.COMMAND_RUN)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

NOTICES = {
    "created": N_("The schedule was created."),
    "enabled": N_("The schedule was enabled."),
    "disabled": N_("The schedule was disabled."),
    "deleted": N_("The schedule was deleted."),
    "not_owner": N_("Only its owner or a tenant manager may change a schedule."),
}


@router.get("/schedules")
async def schedule_list(
    page: Viewer, session: SessionDep, done: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    found = await schedules.list_schedules(session, page.me)
    return page.render(
        "jobs/schedules.html",
        schedules=found,
        notice=page.gettext(NOTICES[done]) if done in NOTICES else "",
        refused=done == "not_owner",
        manager=page.can(P.TENANT_MANAGE),
    )


@router.post("/schedules/{schedule_id}/enabled")
async def set_enabled(
    schedule_id: uuid.UUID, page: Runner, session: SessionDep, runtime: RuntimeDep,
    enabled: Annotated[str, Form(max_length=1)] = "1",
) -> Response:  # fmt: skip
    """Enable (`enabled=1`) or disable (`enabled=0`) a schedule (as PATCH /api/v1/schedules)."""
    request = ScheduleUpdate(enabled=enabled == "1")
    try:
        schedule = await schedules.update_schedule(session, page.me, schedule_id, request)
    except PermissionDenied as exc:
        return await _refused(page, session, exc)
    await session.commit()
    await page_auditor(page, runtime)("schedule.update", target=f"schedule:{schedule.id}",
        risk="medium", detail=request.model_dump(mode="json", exclude_none=True))  # fmt: skip
    done = "enabled" if schedule.enabled else "disabled"
    return RedirectResponse(f"/schedules?done={done}", status_code=303)


@router.post("/schedules/{schedule_id}/delete")
async def delete_schedule(
    schedule_id: uuid.UUID, page: Runner, session: SessionDep, runtime: RuntimeDep
) -> Response:
    try:
        schedule = await schedules.schedule_for(session, page.me, schedule_id, change=True)
    except PermissionDenied as exc:
        return await _refused(page, session, exc)
    await session.delete(schedule)
    await session.commit()
    await page_auditor(page, runtime)("schedule.delete", target=f"schedule:{schedule_id}")
    return RedirectResponse("/schedules?done=deleted", status_code=303)


async def _refused(page: Page, session: SessionDep, exc: PermissionDenied) -> Response:
    """Someone else's schedule: back to the list with a notice (other refusals are errors)."""
    if exc.code != "not_owner":
        raise exc
    await session.rollback()
    return RedirectResponse("/schedules?done=not_owner", status_code=303)
