"""Live output of a command as Server-Sent Events: `GET /api/v1/commands/{id}/stream`.

Events: `snapshot` (the state and output so far, stored and in memory), then `output`
{stream, offset, data, truncated} and `status` {status} as they happen, and `done` {status,
exit_code, error} before the stream closes (`?follow=false`: the snapshot only). `reset`
means "too far behind: reconnect for a fresh snapshot". Comments (`: keep-alive`) keep
proxies from closing a quiet stream.

Taken by API clients (bearer token) and the console's EventSource (its session cookie: an
EventSource cannot send headers). The connection to the database is held only while the command
is read, never while the stream waits.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from steward.protocol import CommandStatus
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.commands import service
from steward.server.commands.models import Command
from steward.server.commands.output import STREAMS, OutputHub, Subscription
from steward.server.deps import (
    RuntimeDep,
    SessionDep,
    authorize_or_record,
    bearer_token,
    principal_from_token,
)
from steward.server.errors import Unauthorized
from steward.server.runtime import Runtime
from steward.server.web.security import SESSION_COOKIE

router = APIRouter(prefix="/api/v1", tags=["commands"])

HEARTBEAT_S = 15.0  # a comment this often; the stored status is checked as often
MAX_STREAM_S = 3600.0  # then the stream ends; an EventSource reconnects by itself


async def _stream_viewer(request: Request, runtime: RuntimeDep, session: SessionDep) -> Principal:
    """`require(P.DEVICE_VIEW)`, also for the console's session cookie."""
    try:
        token = bearer_token(request)
    except Unauthorized:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise
    principal, _ = await principal_from_token(request, runtime, session, token)
    await authorize_or_record(request, runtime, principal, P.DEVICE_VIEW)
    return principal


_stream_viewer.permission = P.DEVICE_VIEW  # type: ignore[attr-defined]  # for the permission tests
StreamViewer = Annotated[Principal, Depends(_stream_viewer)]


@router.get(
    "/commands/{command_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_command(
    command_id: uuid.UUID,
    principal: StreamViewer,
    session: SessionDep,
    runtime: RuntimeDep,
    follow: bool = True,
) -> StreamingResponse:
    """Follow a command's output live (Server-Sent Events). With `follow=false`: only the
    snapshot (and `done` if the command is over), then the stream closes."""
    output = runtime.hub.output
    # Listen before reading, so nothing falls between the snapshot and the first event.
    subscription = output.subscribe(command_id)
    try:
        command = await service.command_for(session, principal, command_id)
        snapshot = _snapshot(command, output)
    except BaseException:
        output.unsubscribe(subscription)
        raise
    finally:
        await session.rollback()  # no connection is held while the stream waits
    return StreamingResponse(
        _events(runtime, subscription, snapshot, follow=follow),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _snapshot(command: Command, output: OutputHub) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "status": command.status,
        "stdout": command.stdout or "",
        "stderr": command.stderr or "",
        "stdout_truncated": command.stdout_truncated,
        "stderr_truncated": command.stderr_truncated,
        "exit_code": command.exit_code,
        "error": command.error,
    }
    live = None if CommandStatus(command.status).is_final else output.snapshot(command.id)
    if live is not None:
        # Memory is ahead of the last write-behind (it is where the stored text comes from).
        for name, text, truncated in (
            ("stdout", live.stdout, live.stdout_truncated),
            ("stderr", live.stderr, live.stderr_truncated),
        ):
            if len(text) > len(snapshot[name]):
                snapshot[name] = text
            snapshot[f"{name}_truncated"] = snapshot[f"{name}_truncated"] or truncated
    return snapshot


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _done(status: str, exit_code: int | None, error: str) -> bytes:
    return _event("done", {"status": status, "exit_code": exit_code, "error": error})


async def _events(
    runtime: Runtime, subscription: Subscription, snapshot: dict[str, Any], *, follow: bool
) -> AsyncIterator[bytes]:
    output = runtime.hub.output
    try:
        yield _event("snapshot", snapshot)
        if CommandStatus(snapshot["status"]).is_final:
            yield _done(snapshot["status"], snapshot["exit_code"], snapshot["error"])
            return
        if not follow:
            return
        sent = {name: len(snapshot[name]) for name in STREAMS}
        deadline = time.monotonic() + MAX_STREAM_S
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(
                    subscription.queue.get(), min(HEARTBEAT_S, remaining)
                )
            except TimeoutError:
                # Quiet: keep the connection, and notice an end the bus did not carry (a
                # cancellation, an expiry, a result taken by another process before we listened).
                final = await _stored_end(runtime, subscription.command_id)
                if final is not None:
                    yield final
                    return
                yield b": keep-alive\n\n"
                continue
            kind = message.get("kind")
            if kind == "output":
                chunk = _continuation(message, sent)
                if chunk is None:
                    yield _event("reset", {})
                    return
                if chunk:
                    yield _event("output", chunk)
            elif kind == "status":
                yield _event("status", {"status": message.get("status")})
            elif kind == "done":
                yield _done(
                    str(message.get("status", "")),
                    message.get("exit_code"),
                    str(message.get("error", "")),
                )
                return
            elif kind == "reset":
                yield _event("reset", {})
                return
    finally:
        output.unsubscribe(subscription)


def _continuation(message: dict[str, Any], sent: dict[str, int]) -> dict[str, Any] | None:
    """The part of a chunk this subscriber has not had: `{}` for nothing new, None for a gap."""
    stream = message.get("stream")
    if stream not in sent:
        return {}
    offset, data = int(message.get("offset", 0)), str(message.get("data", ""))
    truncated = bool(message.get("truncated"))
    position = sent[stream]
    if offset > position:
        return None
    fresh = data[position - offset :]
    if not fresh and not truncated:
        return {}
    sent[stream] = position + len(fresh)
    return {"stream": stream, "offset": position, "data": fresh, "truncated": truncated}


async def _stored_end(runtime: Runtime, command_id: uuid.UUID) -> bytes | None:
    """A `done` event if the command is final in the database."""
    async with runtime.system_sessions() as session:
        row = (
            await session.execute(
                select(Command.status, Command.exit_code, Command.error).where(
                    Command.id == command_id
                )
            )
        ).first()
    if row is None:
        return _done("", None, "")
    if not CommandStatus(row.status).is_final:
        return None
    return _done(row.status, row.exit_code, row.error)
