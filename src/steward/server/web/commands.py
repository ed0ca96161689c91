"""Commands in the console: running a shell command from a device's page and following its
result, the command history, a command's page (states, approvals, cancel), the approvals inbox."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from steward.protocol import CommandStatus, CommandType
from steward.server.accounts.permissions import Permission as P
from steward.server.commands import approvals, service
from steward.server.commands import routes as api
from steward.server.commands.schemas import CommandCreate
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.devices.service import get_device
from steward.server.errors import Conflict, PermissionDenied
from steward.server.jobs import lifecycle, listing
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Operator = Annotated[Page, require_page(P.COMMAND_RUN)]
Approver = Annotated[Page, require_page(P.COMMAND_APPROVE)]
Comment = Annotated[str, Form(max_length=1000)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RECENT_COMMANDS = 10
HISTORY_PAGE = 50
INTERPRETERS = ("sh", "bash", "cmd", "powershell")
# Fired when a command is created or finishes: the device's command list refreshes at once.
CHANGED_EVENT = "steward-commands-changed"


@router.post("/devices/{device_id}/commands")
async def run_command(
    device_id: uuid.UUID,
    page: Operator,
    session: SessionDep,
    runtime: RuntimeDep,
    command: Annotated[str, Form()] = "",
    interpreter: Annotated[str, Form()] = "",
) -> Response:
    try:
        request = CommandCreate.model_validate(
            {
                "type": "shell",
                "payload": {"command": command, "interpreter": interpreter or None},
            }
        )
    except ValidationError:
        return page.render(
            "errors/_alert.html",
            status_code=422,
            status_code_shown=422,
            title=page.gettext("Invalid command"),
            message=page.gettext(
                "Enter a command of at most 64 KiB, and pick a shell from the list."
            ),
        )
    assert page.principal is not None  # require_page guarantees a signed-in user
    auditor = auditor_for(page.request, runtime, page.me)
    try:
        created = await service.create_command(
            session, page.principal, device_id, request, runtime.settings.command_timeout_s
        )
    except PermissionDenied as exc:
        await session.rollback()  # free the connection for the audit record
        await auditor(
            "command.blocked", "blocked", risk="medium", target=f"device:{device_id}",
            device_id=device_id,
            detail={"type": "shell", "payload": request.payload, "reason": exc.code,
                    "message": exc.message},
        )  # fmt: skip
        raise
    await session.commit()  # committed before anyone is told
    if created.status == CommandStatus.QUEUED:
        await runtime.hub.deliver([created])
    await auditor(
        "command.submitted", target=f"command:{created.id}", device_id=device_id, risk="medium",
        detail={"type": created.type, "payload": created.payload, "status": created.status,
                "risk": created.risk, "risk_reasons": created.risk_reasons},
    )  # fmt: skip
    if not page.is_htmx:
        return RedirectResponse(f"/commands/{created.id}", status_code=303)
    result = await service.get_command(session, page.me, created.id)
    return page.render(
        "commands/_panel.html", headers={"HX-Trigger": CHANGED_EVENT}, command=result, final=False
    )


@router.get("/commands/{command_id}/panel")
async def command_panel(command_id: uuid.UUID, page: Viewer, session: SessionDep) -> Response:
    command = await service.get_command(session, page.me, command_id)
    final = CommandStatus(command.status).is_final
    headers = {"HX-Trigger": CHANGED_EVENT} if final else None
    return page.render("commands/_panel.html", headers=headers, command=command, final=final)


@router.get("/commands")
async def command_history(
    page: Viewer,
    session: SessionDep,
    device: Annotated[str, Query(max_length=36)] = "",
    status: Annotated[str, Query(max_length=32)] = "",
    type: Annotated[str, Query(max_length=32)] = "",
    user: Annotated[str, Query(max_length=254)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    before: Annotated[str, Query(max_length=40)] = "",
    before_id: Annotated[str, Query(max_length=36)] = "",
) -> Response:
    """Commands on devices in reach, newest first, filtered as GET /api/v1/commands; dates are
    days in the tenant's time zone; the next page starts after the last row (`before` its time,
    or at that time `before_id` its id: a job's commands share one time)."""
    filters = {"device": device, "status": status, "type": type, "user": user,
               "since": since, "until": until}  # fmt: skip
    after_row, last_day = _instant(before), _day(page, until, next_day=True)
    upto = min((t for t in (after_row, last_day) if t), default=None)
    rows = await api.command_history(
        page.me,
        session,
        device_id=_uuid(device),
        job_id=None,
        status=CommandStatus(status) if status in set(CommandStatus) else None,
        type=type if type in set(CommandType) else None,
        created_by=user.strip() or None,
        since=_day(page, since),
        before=upto,
        before_id=_uuid(before_id) if upto is not None and upto == after_row else None,
        limit=HISTORY_PAGE,
    )
    more = None
    if len(rows) == HISTORY_PAGE:
        last = rows[-1]
        more = urlencode(
            filters | {"before": last.created_at.isoformat(), "before_id": str(last.id)}
        )
    return page.render(
        "commands/history.html",
        rows=rows,
        filters=filters,
        more=more,
        paged=bool(before),
        statuses=list(CommandStatus),
        types=list(CommandType),
    )


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def _instant(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


def _day(page: Page, text: str, *, next_day: bool = False) -> datetime | None:
    """The start of a day (`YYYY-MM-DD`) in the tenant's time zone, or of the day after."""
    try:
        day = date.fromisoformat(text) if text else None
    except ValueError:
        return None
    if day is None:
        return None
    start = datetime.combine(day, time(), tzinfo=page.tz)
    return (start + timedelta(days=1) if next_day else start).astimezone(UTC)


@router.get("/commands/{command_id}")
async def command_page(command_id: uuid.UUID, page: Viewer, session: SessionDep) -> Response:
    """The command's result panel, the history of its states, its approvals, Cancel."""
    command = await service.get_command(session, page.me, command_id)
    device = await get_device(session, page.me, command.device_id)
    final = CommandStatus(command.status).is_final
    return page.render(
        "commands/page.html",
        command=command,
        device=device,
        final=final,
        transitions=await lifecycle.history(session, command.id),
        decisions=await service.approvals_of(session, command_id=command.id),
    )


@router.post("/commands/{command_id}/cancel")
async def cancel_command(
    command_id: uuid.UUID, page: Operator, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """As POST /api/v1/commands/{id}/cancel; one already finished stays as it is."""
    try:
        tell_agent = await service.cancel(session, page.me, command_id)
    except Conflict:
        await session.rollback()
        return RedirectResponse(f"/commands/{command_id}", status_code=303)
    command = await service.command_for(session, page.me, command_id)
    await session.commit()
    await auditor_for(page.request, runtime, page.me)(
        "command.cancelled",
        target=f"command:{command_id}",
        device_id=command.device_id,
        risk="medium",
        detail={"status": command.status},
    )
    if tell_agent:
        await runtime.hub.notify_cancel(command.device_id)
    return RedirectResponse(f"/commands/{command_id}", status_code=303)


@router.get("/approvals")
async def approvals_inbox(page: Approver, session: SessionDep) -> Response:
    """The approver's inbox: single commands and jobs waiting for a decision (never one's own),
    each with approve/deny and a comment."""
    waiting = await service.waiting_for(session, page.me)
    jobs = await listing.jobs_waiting(session, page.me)
    given = await listing.approvals_given(
        session, command_ids=[c.id for c, _ in waiting], job_ids=[j.id for j in jobs]
    )
    return page.render("commands/approvals.html", waiting=waiting, jobs=jobs, given=given)


@router.post("/commands/{command_id}/approve")
async def approve(
    command_id: uuid.UUID, page: Approver, session: SessionDep, runtime: RuntimeDep,
    comment: Comment = "", back: Annotated[str, Form(max_length=16)] = "",
) -> Response:  # fmt: skip
    """Approve a command waiting for approval (never one's own; fresh MFA where asked)."""
    auditor = auditor_for(page.request, runtime, page.me)
    await approvals.decide(
        session, runtime, auditor, page.me, command_id, approve=True, comment=comment.strip()
    )
    return RedirectResponse(_back(back, command_id), status_code=303)


@router.post("/commands/{command_id}/deny")
async def deny(
    command_id: uuid.UUID, page: Approver, session: SessionDep, runtime: RuntimeDep,
    comment: Comment = "", back: Annotated[str, Form(max_length=16)] = "",
) -> Response:  # fmt: skip
    auditor = auditor_for(page.request, runtime, page.me)
    await approvals.decide(
        session, runtime, auditor, page.me, command_id, approve=False, comment=comment.strip()
    )
    return RedirectResponse(_back(back, command_id), status_code=303)


def _back(back: str, command_id: uuid.UUID) -> str:
    return "/approvals" if back == "inbox" else f"/commands/{command_id}"


@router.get("/devices/{device_id}/commands")
async def recent_commands(device_id: uuid.UUID, page: Viewer, session: SessionDep) -> Response:
    commands = await service.list_device_commands(
        session, page.me, device_id, limit=RECENT_COMMANDS
    )
    return page.render("devices/_commands.html", commands=commands, device_id=device_id)
