"""The watchers' WebSocket: `/api/v1/terminal/sessions/{terminal_session_id}/watch`.

A running session is followed read-only from any replica: the one holding it adds the watcher
at once; any other asks for it over the bus (`remote.py`) and refuses with `session_not_here`
when no replica answers in a few seconds (the session just ended, or its replica is gone).
Joining (`terminal.watch`), leaving (`terminal.unwatch`) and typing (`terminal.watch_input`,
refused, audited once per watcher) are audited here, on the watcher's replica.

Frames as for the owner's socket (`sockets.py`): the watcher gets `opened` (with `owner` and
`read_only`), the output so far, then `output`, `resize`, `watchers` and `exit`. A watcher of
a session whose replica goes silent is told it ended (`server_lost`, close code 4503).
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, WebSocket

from steward.server.audit.auditor import Auditor
from steward.server.errors import NotFound, StewardError
from steward.server.runtime import Runtime
from steward.server.terminal import service
from steward.server.terminal.audience import Watcher
from steward.server.terminal.peer import Peer
from steward.server.terminal.remote import RemoteWatch
from steward.server.terminal.sockets import (
    FRAME_ERRORS,
    MAX_BROWSER_FRAME,
    FrameBudget,
    parse_frame,
    refuse,
    registry_of,
    release,
    sign_in,
)

router = APIRouter(prefix="/api/v1")


def _not_here() -> NotFound:
    return NotFound("this session has ended or runs on another server", code="session_not_here")


@router.websocket("/terminal/sessions/{terminal_session_id}/watch")
async def watch_socket(websocket: WebSocket, terminal_session_id: uuid.UUID) -> None:
    runtime: Runtime = websocket.app.state.runtime
    registry = registry_of(websocket)
    target = f"terminal:{terminal_session_id}"
    await websocket.accept()
    async with runtime.sessions() as session:
        signed_in = await sign_in(websocket, runtime, session, "terminal.watch", target)
        if signed_in is None:
            return
        principal, _tenant, auditor = signed_in
        try:
            row, device = await service.check_watch(session, principal, terminal_session_id)
            live = registry.get(terminal_session_id)
            if live is None and not registry.remote.available:
                raise _not_here()  # one process: nobody else could hold it
            if live is not None and live.stopped.is_set():
                raise _not_here()
        except StewardError as exc:
            await release(session)
            await _refused(auditor, target, exc)
            await refuse(websocket, exc)
            return
    peer = Peer(principal.email, websocket.send_text, websocket.close)
    remote: RemoteWatch | None = None
    if live is not None:
        live.add_watcher(Watcher(peer, principal.email))
    else:
        remote = await registry.remote.join(
            terminal_session_id, principal.tenant_id, principal.user_id, peer
        )
        if remote is None:
            error = _not_here()
            await _refused(auditor, target, error)
            peer.push({"type": "error", "code": error.code, "message": error.message})
            peer.end(4404, error.code)
            await peer.wait_closed()
            return
    joined_at = time.monotonic()
    await auditor(
        "terminal.watch",
        target=str(terminal_session_id),
        device_id=device.id,
        detail={"session_id": str(terminal_session_id), "owner": row.user_email},
    )
    try:
        await _read_watcher(websocket, peer, auditor, terminal_session_id, device.id)
    finally:
        if live is not None:
            live.remove_watcher(peer.key)
        if remote is not None:
            await registry.remote.leave(remote)
        peer.end(1000, "left")
        await auditor(
            "terminal.unwatch",
            target=str(terminal_session_id),
            device_id=device.id,
            detail={
                "session_id": str(terminal_session_id),
                "watched_s": round(time.monotonic() - joined_at, 1),
            },
        )
        await peer.wait_closed()


async def _refused(auditor: Auditor, target: str, error: StewardError) -> None:
    await auditor(
        "terminal.watch", "blocked", target=target, risk="medium", detail={"reason": error.code}
    )


async def _read_watcher(
    websocket: WebSocket,
    peer: Peer,
    auditor: Auditor,
    session_id: uuid.UUID,
    device_id: uuid.UUID,
) -> None:
    """The watcher's frames until they leave or the session ends: all but pings refused."""
    budget = FrameBudget(frames_per_s=20, burst_frames=60)
    refused = 0
    while not peer.closing:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        size = len(text) or len(message.get("bytes") or b"")
        if size > MAX_BROWSER_FRAME or not budget.spend(size):
            peer.end(4429, "flood")
            return
        frame = parse_frame(text)
        if frame is not None and frame.get("type") in ("ping", None):
            continue
        if frame is not None and frame.get("type") == "close":
            return
        refused += 1
        peer.push({"type": "error", "code": "read_only", "message": FRAME_ERRORS["read_only"]})
        if refused == 1:
            await auditor(
                "terminal.watch_input",
                "blocked",
                target=str(session_id),
                device_id=device_id,
                detail={"session_id": str(session_id)},
            )
