"""The terminal API: sessions (list, one, recording, transcript search, terminate) and the
tenant's terminal policy. The WebSockets are in `sockets.py`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.terminal import service
from steward.server.terminal.models import TerminalSession
from steward.server.terminal.policy import change_policy, get_policy
from steward.server.terminal.recording import open_recording, search_recording
from steward.server.terminal.registry import TerminalRegistry
from steward.server.terminal.schemas import (
    TerminalPolicyPublic,
    TerminalPolicyUpdate,
    TerminalSearchResult,
    TerminalSessionPublic,
    TranscriptMatch,
)

router = APIRouter(prefix="/api/v1", tags=["terminal"])

Viewer = Annotated[Principal, require(P.DEVICE_VIEW)]
Manager = Annotated[Principal, require(P.TENANT_MANAGE)]
CHUNK_BYTES = 64 * 1024


def registry_of(request: Request) -> TerminalRegistry:
    registry: TerminalRegistry = request.app.state.terminals
    return registry


@router.get("/terminal/sessions", response_model=list[TerminalSessionPublic])
async def list_sessions(
    principal: Viewer,
    session: SessionDep,
    response: Response,
    device_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    live: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[TerminalSession]:
    """Newest first (total in `X-Total-Count`). Without `audit.view`: one's own sessions."""
    rows, total = await service.list_sessions(
        session, principal, device_id=device_id, user_id=user_id, live_only=live,
        limit=limit, offset=offset,
    )  # fmt: skip
    response.headers["X-Total-Count"] = str(total)
    return list(rows)


@router.get("/terminal/sessions/{terminal_session_id}", response_model=TerminalSessionPublic)
async def get_session(
    terminal_session_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> TerminalSession:
    row, _device = await service.get_session(session, principal, terminal_session_id)
    return row


def recording_response(data_dir: Path, row: TerminalSession) -> StreamingResponse:
    """The .cast file, streamed (404 `no_recording` when there is none)."""
    file = open_recording(data_dir, row)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await asyncio.to_thread(file.read, CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk
        finally:
            file.close()

    return StreamingResponse(
        chunks(),
        media_type="application/x-asciicast",
        headers={"Content-Disposition": f'attachment; filename="terminal-{row.id}.cast"'},
    )


@router.get(
    "/terminal/sessions/{terminal_session_id}/recording",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-asciicast": {}}}},
)
async def download_recording(
    terminal_session_id: uuid.UUID,
    principal: Viewer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> StreamingResponse:
    """The recording in asciicast v2 (its SHA-256 is in the session and the audit log)."""
    row, _device = await service.get_session(session, principal, terminal_session_id)
    response = recording_response(runtime.settings.data_dir, row)
    session.expunge_all()  # keep the rows loaded; the audit log takes the connection
    await session.rollback()  # (SQLite has only one)
    await auditor(
        "terminal.recording_download",
        target=str(row.id),
        device_id=row.device_id,
        detail={"session_id": str(row.id), "sha256": row.recording_sha256},
    )
    return response


@router.get("/terminal/sessions/{terminal_session_id}/search", response_model=TerminalSearchResult)
async def search_transcript(
    terminal_session_id: uuid.UUID,
    principal: Viewer,
    session: SessionDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(min_length=1, max_length=200)],
) -> TerminalSearchResult:
    """Lines of output (escape sequences removed) containing `q`, with their times."""
    row, _device = await service.get_session(session, principal, terminal_session_id)
    matches, truncated = await asyncio.to_thread(
        search_recording, runtime.settings.data_dir, row, q
    )
    return TerminalSearchResult(
        query=q,
        matches=[TranscriptMatch(time_s=m.time_s, line=m.line) for m in matches],
        truncated=truncated,
    )


@router.post("/terminal/sessions/{terminal_session_id}/terminate", status_code=202)
async def terminate_session(
    terminal_session_id: uuid.UUID,
    request: Request,
    principal: Manager,
    session: SessionDep,
    auditor: AuditorDep,
) -> dict[str, str]:
    """End a running session (anyone's): its owner's browser is told it was terminated."""
    row, device = await service.check_terminate(session, principal, terminal_session_id)
    session.expunge_all()  # keep the rows loaded; the audit log takes the connection
    await session.rollback()  # (SQLite has only one)
    await registry_of(request).terminate(row.id, principal.actor_name)
    await auditor(
        "terminal.terminate",
        target=str(row.id),
        device_id=device.id,
        risk="medium",
        detail={"session_id": str(row.id), "owner": row.user_email},
    )
    return {"status": "terminating"}


@router.get("/tenant/terminal-policy", response_model=TerminalPolicyPublic)
async def read_policy(principal: Manager, session: SessionDep) -> TerminalPolicyPublic:
    return await get_policy(session)


@router.put("/tenant/terminal-policy", response_model=TerminalPolicyPublic)
async def write_policy(
    update: TerminalPolicyUpdate,
    principal: Manager,
    session: SessionDep,
    auditor: AuditorDep,
) -> TerminalPolicyPublic:
    return await change_policy(session, auditor, update, principal.actor_name)
