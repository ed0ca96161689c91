"""The browsers' terminal WebSockets, and what they share.

- `/api/v1/devices/{device_id}/terminal?cols=&rows=`: open a shell on the device and drive it.
- `/api/v1/terminal/sessions/{terminal_session_id}/watch`: follow a running session, read-only,
  from any replica (`watching.py`).

Both take a bearer token (`Authorization`) or the console's session cookie; with the cookie the
`Origin` must be the host itself (a page of another site cannot borrow the cookie). Every
refusal is audited, then the socket is closed with a 44xx code whose reason is the error code
(`unauthorized`, `forbidden`, `outside_time_window`, `step_up_required`, `mfa_required`,
`not_found`, `device_offline`, ...), after an `error` frame with a message.

Frames are JSON text. Browser -> server: `{"type": "input", "data"}`, `{"type": "resize",
"cols", "rows"}`, `{"type": "close"}`. Server -> browser: `session` (its id), `opened`,
`output` {data}, `resize`, `watchers` {watchers: [names]}, `notice`, `error` {code, message}
and `exit` {reason, exit_code, error} just before the socket closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from steward.protocol.streams import MAX_TERMINAL_COLS, MAX_TERMINAL_ROWS
from steward.server.accounts.principal import Principal
from steward.server.audit.auditor import Auditor, Origin
from steward.server.audit.service import record
from steward.server.deps import bearer_token, principal_from_token
from steward.server.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StewardError,
    Unauthorized,
)
from steward.server.files.store import TenantStore
from steward.server.runtime import Runtime
from steward.server.tenancy.hosts import HostContext
from steward.server.tenancy.models import Tenant
from steward.server.terminal import service
from steward.server.terminal.live import LiveTerminal, SessionContext
from steward.server.terminal.models import CloseReason, RecordingFailurePolicy
from steward.server.terminal.peer import Peer
from steward.server.terminal.policy import get_policy
from steward.server.terminal.recording import Recording, RecordingFailed
from steward.server.terminal.registry import TerminalRegistry
from steward.server.web.security import SESSION_COOKIE

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")

MAX_BROWSER_FRAME = 128 * 1024  # characters of one text frame
MAX_BAD_FRAMES = 20  # malformed frames in a row, then the session is closed as a flood


class FrameBudget:
    """Token buckets on frames and characters per second (a paste is one big frame; a flood is
    many)."""

    def __init__(
        self,
        frames_per_s: float = 100.0,
        burst_frames: float = 300.0,
        chars_per_s: float = 256 * 1024,
        burst_chars: float = 1024 * 1024,
    ) -> None:
        self._rates = (frames_per_s, chars_per_s)
        self._bursts = (burst_frames, burst_chars)
        self._frames, self._chars = burst_frames, burst_chars
        self._at = time.monotonic()

    def spend(self, chars: int) -> bool:
        now = time.monotonic()
        elapsed, self._at = now - self._at, now
        self._frames = min(self._bursts[0], self._frames + elapsed * self._rates[0]) - 1
        self._chars = min(self._bursts[1], self._chars + elapsed * self._rates[1]) - chars
        return self._frames >= 0 and self._chars >= 0


def _close_code(error: StewardError) -> int:
    if isinstance(error, Unauthorized):
        return 4401
    if isinstance(error, PermissionDenied):
        return 4403
    if isinstance(error, NotFound):
        return 4404
    if isinstance(error, RateLimited):
        return 4429
    if isinstance(error, InvalidInput):
        return 4400
    if isinstance(error, Conflict) or error.status_code == 409:
        return 4409
    return 4500


async def refuse(websocket: WebSocket, error: StewardError) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(
            json.dumps({"type": "error", "code": error.code, "message": error.message})
        )
        await websocket.close(_close_code(error), error.code[:120])


def origin_of(websocket: WebSocket) -> Origin:
    address = websocket.client.host if websocket.client else "unknown"
    return Origin(address, websocket.headers.get("user-agent", "")[:300])


def _as_request(websocket: WebSocket) -> Request:
    """The handshake as a request, for the dependencies that prove who is asking."""
    return Request({**websocket.scope, "type": "http", "method": "GET"})


def _check_origin(websocket: WebSocket) -> None:
    origin = websocket.headers.get("origin", "")
    if not origin or urlsplit(origin).netloc.lower() != websocket.headers.get("host", "").lower():
        raise PermissionDenied(
            "a console session may only be used from the console's own pages",
            code="bad_origin",
        )


async def authenticate(
    websocket: WebSocket, runtime: Runtime, session: AsyncSession
) -> tuple[Principal, Tenant]:
    request = _as_request(websocket)
    if websocket.headers.get("authorization"):
        token = bearer_token(request)
    else:
        token = websocket.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise Unauthorized("sign in first", code="unauthorized")
        _check_origin(websocket)
    return await principal_from_token(request, runtime, session, token)


async def sign_in(
    websocket: WebSocket, runtime: Runtime, session: AsyncSession, action: str, target: str
) -> tuple[Principal, Tenant, Auditor] | None:
    """Who is on this socket, with an auditor speaking for them; None when refused (audited
    as `action` and the socket closed)."""
    try:
        principal, tenant = await authenticate(websocket, runtime, session)
    except StewardError as exc:
        await audit_anonymous(websocket, runtime, action, exc, target)
        await refuse(websocket, exc)
        return None
    auditor = Auditor(
        runtime.system_sessions,
        principal.tenant_id,
        principal.actor,
        principal.actor_name,
        origin_of(websocket),
    )
    return principal, tenant, auditor


async def audit_anonymous(
    websocket: WebSocket, runtime: Runtime, action: str, error: StewardError, target: str
) -> None:
    host = websocket.scope.get("state", {}).get("host")
    if not isinstance(host, HostContext) or host.tenant is None:
        return
    origin = origin_of(websocket)
    await record(
        runtime.system_sessions,
        tenant_id=host.tenant.id,
        actor="anonymous",
        action=action,
        result="blocked",
        risk="medium",
        address=origin.address,
        user_agent=origin.user_agent,
        target=target,
        detail={"reason": error.code},
    )


async def release(session: AsyncSession) -> None:
    """End the transaction before auditing: the audit log needs a connection of its own, and
    SQLite's pool has one."""
    session.expunge_all()
    await session.rollback()


def _size(websocket: WebSocket) -> tuple[int, int]:
    try:
        cols = int(websocket.query_params.get("cols", "80"))
        rows = int(websocket.query_params.get("rows", "24"))
    except ValueError:
        raise InvalidInput("cols and rows are numbers", code="invalid_size") from None
    if not (1 <= cols <= MAX_TERMINAL_COLS and 1 <= rows <= MAX_TERMINAL_ROWS):
        raise InvalidInput("the terminal size is out of range", code="invalid_size")
    return cols, rows


def registry_of(websocket: WebSocket) -> TerminalRegistry:
    registry: TerminalRegistry = websocket.app.state.terminals
    return registry


@router.websocket("/devices/{device_id}/terminal")
async def terminal_socket(websocket: WebSocket, device_id: uuid.UUID) -> None:
    runtime: Runtime = websocket.app.state.runtime
    registry = registry_of(websocket)
    target = f"device:{device_id}"
    await websocket.accept()
    async with runtime.sessions() as session:
        signed_in = await sign_in(websocket, runtime, session, "terminal.open", target)
        if signed_in is None:
            return
        principal, tenant, auditor = signed_in
        try:
            cols, rows = _size(websocket)
            policy = await get_policy(session)
            opening = await service.check_open(
                session, principal, device_id, tenant.settings, policy
            )
            row = await service.create_session(session, principal, opening, cols=cols, rows=rows)
            await session.commit()
        except StewardError as exc:
            await release(session)
            await auditor(
                "terminal.open",
                "blocked",
                target=target,
                risk="medium",
                detail={"reason": exc.code},
            )
            await refuse(websocket, exc)
            return
    device = opening.device
    context = SessionContext(
        session_id=row.id,
        tenant_id=principal.tenant_id,
        device_id=device.id,
        hostname=device.hostname,
        user_id=principal.user_id,
        user_email=principal.email,
        auditor=auditor,
        policy=policy,
        cols=cols,
        rows=rows,
    )
    recording = await _start_recording(runtime, context, row.recording_path, device.group_id)
    await auditor(
        "terminal.open",
        target=str(row.id),
        device_id=device.id,
        risk="medium",
        detail={
            "session_id": str(row.id),
            "hostname": device.hostname,
            "shell": policy.shell,
            "run_as": policy.run_as,
            "record_input": policy.record_input,
            "recording": row.recording_path if recording else "",
        },
    )
    owner = Peer(principal.email, websocket.send_text, websocket.close)
    owner.push({"type": "session", "session_id": str(row.id), "hostname": device.hostname})
    live = LiveTerminal(context, registry, recording, owner)
    if recording is None and policy.recording_failure_policy is RecordingFailurePolicy.STRICT:
        live.agent_error = "the recording could not be started"
        live.request_stop(CloseReason.RECORDING_FAILED)
    await live.run(_read_owner(websocket, live))
    await owner.wait_closed()


async def _start_recording(
    runtime: Runtime, context: SessionContext, relative: str, group_id: uuid.UUID
) -> Recording | None:
    store = TenantStore(runtime.settings.data_dir, context.tenant_id)
    recording = Recording(store, group_id, relative)
    try:
        recording.start(
            width=context.cols,
            height=context.rows,
            timestamp=int(time.time()),
            env={"TERM": "xterm-256color", "SHELL": context.policy.shell},
            title=f"{context.hostname} ({context.user_email})",
        )
    except (RecordingFailed, StewardError) as exc:
        await context.auditor(
            "terminal.recording_failed",
            "failure",
            target=str(context.session_id),
            device_id=context.device_id,
            risk="high",
            detail={
                "session_id": str(context.session_id),
                "error": str(exc)[:300],
                "policy": context.policy.recording_failure_policy.value,
            },
        )
        return None
    return recording


def parse_frame(text: str) -> dict[str, Any] | None:
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _resize_of(frame: dict[str, Any]) -> tuple[int, int] | None:
    cols, rows = frame.get("cols"), frame.get("rows")
    if type(cols) is not int or type(rows) is not int:
        return None
    if not (1 <= cols <= MAX_TERMINAL_COLS and 1 <= rows <= MAX_TERMINAL_ROWS):
        return None
    return cols, rows


async def _read_owner(websocket: WebSocket, live: LiveTerminal) -> None:
    """The owner's frames until they leave (or flood)."""
    budget = FrameBudget()
    bad = 0
    owner = live.context.user_email
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            live.request_stop(CloseReason.USER, owner)
            return
        text = message.get("text") or ""
        size = len(text) or len(message.get("bytes") or b"")
        if size > MAX_BROWSER_FRAME or not budget.spend(size):
            live.request_stop(CloseReason.FLOOD, owner)
            return
        frame = parse_frame(text)
        kind = frame.get("type") if frame else None
        error = ""
        if frame is None:
            error = "invalid_frame"
        elif kind == "input":
            data = frame.get("data")
            if isinstance(data, str) and data:
                await live.input(data)
            else:
                error = "invalid_input"
        elif kind == "resize":
            dimensions = _resize_of(frame)
            if dimensions is None:
                error = "invalid_resize"
            else:
                await live.resize(*dimensions)
        elif kind == "close":
            live.request_stop(CloseReason.USER, owner)
            return
        elif kind != "ping":
            error = "unknown_type"
        if not error:
            bad = 0
            continue
        bad += 1
        live.owner.push({"type": "error", "code": error, "message": FRAME_ERRORS[error]})
        if bad > MAX_BAD_FRAMES:
            live.request_stop(CloseReason.FLOOD, owner)
            return


FRAME_ERRORS = {
    "invalid_frame": "frames are JSON objects",
    "invalid_input": "input needs non-empty text in `data`",
    "invalid_resize": (
        f"a resize needs whole numbers cols 1-{MAX_TERMINAL_COLS} and rows 1-{MAX_TERMINAL_ROWS}"
    ),
    "unknown_type": "unknown frame type",
    "read_only": "watchers cannot type into the session",
}
