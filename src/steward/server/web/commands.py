"""Running a shell command from a device's page, and following its result."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from steward.protocol import CommandStatus
from steward.server.accounts.permissions import Permission as P
from steward.server.commands import approvals, service
from steward.server.commands.schemas import ShellCommandCreate
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.devices.service import get_device
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Operator = Annotated[Page, require_page(P.COMMAND_RUN)]
Approver = Annotated[Page, require_page(P.COMMAND_APPROVE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RECENT_COMMANDS = 10
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
        request = ShellCommandCreate.model_validate(
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
    created = await service.create_command(
        session, page.principal, device_id, request, runtime.settings.command_timeout_s
    )
    await session.commit()  # committed before anyone is told
    await runtime.hub.notify_command(device_id)
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


@router.get("/commands/{command_id}")
async def command_page(command_id: uuid.UUID, page: Viewer, session: SessionDep) -> Response:
    command = await service.get_command(session, page.me, command_id)
    device = await get_device(session, page.me, command.device_id)
    final = CommandStatus(command.status).is_final
    return page.render("commands/page.html", command=command, device=device, final=final)


@router.get("/approvals")
async def approvals_inbox(page: Approver, session: SessionDep) -> Response:
    """The approver's inbox: each row opens the command, where it is approved or denied."""
    waiting = await service.waiting_for(session, page.me)
    return page.render("commands/approvals.html", waiting=waiting)


@router.post("/commands/{command_id}/approve")
async def approve(
    command_id: uuid.UUID, page: Approver, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Approve a command waiting for approval (never one's own; fresh MFA where asked)."""
    auditor = auditor_for(page.request, runtime, page.me)
    await approvals.decide(session, runtime, auditor, page.me, command_id, approve=True)
    return RedirectResponse(f"/commands/{command_id}", status_code=303)


@router.post("/commands/{command_id}/deny")
async def deny(
    command_id: uuid.UUID, page: Approver, session: SessionDep, runtime: RuntimeDep
) -> Response:
    auditor = auditor_for(page.request, runtime, page.me)
    await approvals.decide(session, runtime, auditor, page.me, command_id, approve=False)
    return RedirectResponse(f"/commands/{command_id}", status_code=303)


@router.get("/devices/{device_id}/commands")
async def recent_commands(device_id: uuid.UUID, page: Viewer, session: SessionDep) -> Response:
    commands = await service.list_device_commands(
        session, page.me, device_id, limit=RECENT_COMMANDS
    )
    return page.render("devices/_commands.html", commands=commands, device_id=device_id)
