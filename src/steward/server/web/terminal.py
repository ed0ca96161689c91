"""Terminal pages: a device's terminal, the session list, playback with transcript search, live
watching, and ending a session (administrators)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from steward.server.accounts.permissions import Permission as P
from steward.server.audit.auditor import Auditor
from steward.server.deps import RuntimeDep, SessionDep, origin_of
from steward.server.errors import PermissionDenied
from steward.server.terminal import service
from steward.server.terminal.models import TerminalSession
from steward.server.terminal.policy import get_policy
from steward.server.terminal.recording import Match, search_recording
from steward.server.terminal.registry import TerminalRegistry
from steward.server.terminal.routes import recording_response
from steward.server.web.page import Page, PageRoute, require_page
from steward.server.web.security import CONTENT_SECURITY_POLICY

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Opener = Annotated[Page, require_page(P.TERMINAL_OPEN)]
Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Manager = Annotated[Page, require_page(P.TENANT_MANAGE)]
PAGE_SIZE = 50
Search = Annotated[str, Query(max_length=200)]
# The player's terminal emulator is WebAssembly: its page allows compiling it, nothing more.
PLAYER_POLICY = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'"
)


def _labels(page: Page) -> dict[str, str]:
    """What the terminal script says, in the page's language."""
    _ = page.gettext
    return {
        "connecting": _("Connecting…"),
        "opening": _("Opening the shell…"),
        "connected": _("Connected"),
        "ended": _("Session ended"),
        "disconnected": _("Disconnected"),
        "watching": _("Watching (read-only)"),
        "watchers": _("Watching:"),
        "nobody": _("nobody"),
        "read_only": _("Read-only: watchers cannot type."),
        "recording_failed": _("The recording failed: this session is no longer recorded."),
        "exited": _("The shell ended."),
        "user": _("You closed the session."),
        "idle_timeout": _("Closed after being idle too long."),
        "max_duration": _("Closed: the session reached its maximum duration."),
        "terminated": _("An administrator ended this session."),
        "flood": _("Closed: the browser sent too much, too fast."),
        "slow_client": _("Closed: the browser could not keep up with the output."),
        "recording_failed_close": _("Closed: the session could not be recorded."),
        "agent_disconnected": _("The agent disconnected."),
        "open_failed": _("The terminal could not be opened."),
        "server_stopped": _("The server is restarting."),
        "server_lost": _("The server holding this session stopped."),
        "forbidden": _("Your role does not allow this."),
        "outside_time_window": _("This is outside the hours you may act in."),
        "step_up_required": _("Confirm with a fresh two-factor code first."),
        "mfa_required": _("Set up two-factor authentication first."),
        "not_found": _("Not found, or you cannot see it."),
        "session_not_here": _("This session has ended or runs on another server."),
        "device_offline": _("The device is offline."),
    }


@router.get("/devices/{device_id}/terminal")
async def terminal_page(
    device_id: uuid.UUID, request: Request, page: Opener, session: SessionDep
) -> Response:
    device = await service.device_terminal_allowed(session, page.me, device_id)
    policy = await get_policy(session)
    try:
        tenant_settings = page.tenant.settings if page.tenant else None
        service.check_terminal_step_up(page.me, tenant_settings, policy)
    except PermissionDenied as exc:
        if exc.code != "step_up_required":
            raise
        target = f"/devices/{device_id}/terminal"
        return RedirectResponse(f"/step-up?{urlencode({'next': target})}", status_code=303)
    mine, _total = await service.list_sessions(
        session, page.me, device_id=device_id, user_id=page.me.user_id, live_only=True, limit=10
    )
    return page.render(
        "terminal/console.html",
        device=device,
        policy=policy,
        labels=_labels(page),
        socket_path=f"/api/v1/devices/{device_id}/terminal",
        open_sessions=mine,
    )


@router.get("/terminal/sessions")
async def session_list(
    page: Viewer,
    session: SessionDep,
    device: Annotated[uuid.UUID | None, Query()] = None,
    user: Search = "",
    live: bool = False,
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    rows, total = await service.list_sessions(
        session, page.me, device_id=device, user_email=user.strip() or None, live_only=live,
        limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE,
    )  # fmt: skip
    filters = {"device": str(device) if device else "", "user": user, "live": live}

    def page_url(number: int) -> str:
        params = {k: v for k, v in filters.items() if v} | ({"page": number} if number > 1 else {})
        return f"/terminal/sessions?{urlencode(params)}" if params else "/terminal/sessions"

    return page.render(
        "terminal/sessions.html",
        rows=rows,
        total=total,
        filters=filters,
        page_number=page_number,
        pages=max(1, -(-total // PAGE_SIZE)),
        page_url=page_url,
        sees_all=service.may_see_all(page.me),
        duration=duration_text,
    )


def _registry(request: Request) -> TerminalRegistry:
    registry: TerminalRegistry = request.app.state.terminals
    return registry


@router.get("/terminal/sessions/{terminal_session_id}")
async def playback_page(
    terminal_session_id: uuid.UUID,
    request: Request,
    page: Viewer,
    session: SessionDep,
    runtime: RuntimeDep,
    q: Search = "",
) -> Response:
    row, device = await service.get_session(session, page.me, terminal_session_id)
    matches: list[Match] = []
    truncated = False
    query = q.strip()
    if query and row.recording_path and row.recording_bytes:
        matches, truncated = await asyncio.to_thread(
            search_recording, runtime.settings.data_dir, row, query
        )
    can_watch = row.live and _registry(request).get(row.id) is not None
    response = page.render(
        "terminal/playback.html",
        row=row,
        device=device,
        q=query,
        matches=matches,
        truncated=truncated,
        can_watch=can_watch and (page.can(P.TERMINAL_OPEN) or page.can(P.TENANT_MANAGE)),
        can_terminate=row.live and page.can(P.TENANT_MANAGE),
        has_recording=bool(row.recording_path and row.recording_bytes),
        duration=duration_text,
    )
    response.headers["Content-Security-Policy"] = PLAYER_POLICY
    return response


@router.get("/terminal/sessions/{terminal_session_id}/recording.cast")
async def recording_file(
    terminal_session_id: uuid.UUID, page: Viewer, session: SessionDep, runtime: RuntimeDep
) -> StreamingResponse:
    row, _device = await service.get_session(session, page.me, terminal_session_id)
    return recording_response(runtime.settings.data_dir, row)


@router.get("/terminal/sessions/{terminal_session_id}/watch")
async def watch_page(terminal_session_id: uuid.UUID, page: Opener, session: SessionDep) -> Response:
    # An ended session still shows the page: its socket then says it has ended.
    row, device = await service.check_watch(session, page.me, terminal_session_id, running=False)
    return page.render(
        "terminal/watch.html",
        row=row,
        device=device,
        labels=_labels(page),
        socket_path=f"/api/v1/terminal/sessions/{terminal_session_id}/watch",
    )


@router.post("/terminal/sessions/{terminal_session_id}/terminate")
async def terminate(
    terminal_session_id: uuid.UUID,
    request: Request,
    page: Manager,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    row, device = await service.check_terminate(session, page.me, terminal_session_id)
    owner = row.user_email
    session.expunge_all()
    await session.rollback()  # the audit log takes the connection (SQLite has only one)
    await _registry(request).terminate(terminal_session_id, page.me.actor_name)
    principal = page.me
    auditor = Auditor(
        runtime.system_sessions,
        principal.tenant_id,
        principal.actor,
        principal.actor_name,
        origin_of(request),
    )
    await auditor(
        "terminal.terminate",
        target=str(terminal_session_id),
        device_id=device.id,
        risk="medium",
        detail={"session_id": str(terminal_session_id), "owner": owner},
    )
    return RedirectResponse(f"/terminal/sessions/{terminal_session_id}", status_code=303)


def duration_text(row: TerminalSession) -> str:
    seconds = row.duration_s
    if seconds is None:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
