"""The agent-facing API, `/api/agent/v1/...`: enrollment, WebSocket, short poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.websockets import WebSocketDisconnect

from steward.protocol import (
    MAX_MESSAGE_BYTES,
    CommandAck,
    CommandCancel,
    CommandResult,
    EnrollRequest,
    EnrollResponse,
    ErrorMessage,
    FileResponse,
    Hello,
    LightHeartbeat,
    PollRequest,
    PollResponse,
    ProtocolError,
    TerminalExit,
    TerminalOpened,
    TerminalOutput,
    Welcome,
    dump_message,
    parse_agent_message,
)
from steward.server.audit.service import record
from steward.server.commands import delivery as commands
from steward.server.deps import RuntimeDep, SystemSessionDep
from steward.server.devices import enrollment
from steward.server.devices.models import Device
from steward.server.errors import (
    InvalidInput,
    RateLimited,
    ServerBusy,
    StewardError,
    Unauthorized,
)
from steward.server.gateway.handlers import handle_message
from steward.server.gateway.hub import AgentConnection
from steward.server.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/agent/v1", tags=["agent"])

HELLO_TIMEOUT_S = 15.0
SEND_TIMEOUT_S = 10.0
MAX_BAD_FRAMES = 20


def _client_address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/enroll", response_model=EnrollResponse)
async def enroll(
    request: Request, runtime: RuntimeDep, session: SystemSessionDep
) -> EnrollResponse:
    address = _client_address(request)
    limiter = runtime.pin_failures  # shared by the replicas when they share Redis
    if await limiter.exceeded(address):
        retry_after_s = await limiter.retry_after_s(address)
        if runtime.refusals.first_in_window(("enroll", address)):  # a flood is one line
            log.warning("enrollment refused: too many wrong PINs from %s", address)
        raise RateLimited(
            "too many failed enrollment attempts from this address", retry_after_s=retry_after_s
        )
    body = await request.body()
    try:
        enroll_request = EnrollRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(_first_error(exc), code="invalid_input") from None
    try:
        response = await enrollment.enroll(
            session, runtime.settings.effective_secret_key, enroll_request
        )
    except Unauthorized:
        await limiter.hit(address)
        await session.rollback()
        raise
    device_id = uuid.UUID(response.device_id)
    tenant_id = await _tenant_of(session, device_id)
    await session.commit()
    log.info("device %s enrolled into %s from %s", response.device_id, response.tenant, address)
    await record(
        runtime.system_sessions,
        tenant_id=tenant_id,
        actor=f"agent:{device_id}",
        actor_name=enroll_request.hostname[:200],
        action="agent.enroll",
        result="success",
        address=address,
        user_agent=request.headers.get("user-agent", ""),
        target=f"device:{device_id}",
        device_id=device_id,
        risk="medium",
        detail={"hostname": enroll_request.hostname},
    )
    return response


async def _tenant_of(session: AsyncSession, device_id: uuid.UUID) -> uuid.UUID:
    tenant_id = await session.scalar(select(Device.tenant_id).where(Device.id == device_id))
    assert tenant_id is not None
    return tenant_id


@router.post("/poll", response_model=PollResponse)
async def poll(request: Request, runtime: RuntimeDep, session: SystemSessionDep) -> PollResponse:
    # Read the body before touching the database: a slow client must not hold a connection.
    raw = await request.body()
    identity = await enrollment.authenticate_agent(session, request.headers.get("authorization"))
    try:
        body = PollRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(_first_error(exc), code="invalid_message") from None
    hub = runtime.hub
    interval = hub.interval_for(identity.device_id)
    hub.status.seen(identity.device_id, identity.tenant_id, transport="poll", interval_s=interval)
    for message in body.messages:
        if isinstance(message, TerminalOutput | TerminalOpened | TerminalExit | FileResponse):
            continue  # terminals and files need a WebSocket: nobody asked a polling agent
        await handle_message(hub, session, identity, message, transport="poll", interval_s=interval)
    await session.commit()
    # A poll answer can be lost; re-send what was sent but not acknowledged after a while.
    pending = await commands.pending_for(
        session, identity.device_id, resend_after_s=max(30.0, interval * 3)
    )
    await commands.mark_sent(
        session, identity.tenant_id, identity.device_id, [c.id for c in pending]
    )
    cancels = await commands.cancels_for(session, identity.device_id)
    await session.commit()
    return PollResponse(
        messages=[
            hub.config_for(identity.device_id),
            *(CommandCancel(command_id=command_id) for command_id in cancels),
            *(commands.to_dispatch(c) for c in pending),
        ],
        light_heartbeat_interval_s=interval,
        full_heartbeat_interval_s=runtime.settings.full_heartbeat_interval_s,
    )


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid body"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))


async def _deny(websocket: WebSocket, error: StewardError) -> None:
    headers = {}
    if isinstance(error, RateLimited | ServerBusy):
        headers["Retry-After"] = str(error.retry_after_s)
    response = JSONResponse(
        {"error": {"code": error.code, "message": error.message}},
        status_code=error.status_code,
        headers=headers,
    )
    try:
        await websocket.send_denial_response(response)
    except RuntimeError:  # the server has no denial-response extension
        await websocket.close(code=1008, reason=error.code)


@router.websocket("/ws")
async def agent_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    hub = runtime.hub
    gate = runtime.admission
    if hub.connection_count >= runtime.settings.max_agent_connections:
        await _deny(websocket, gate.refuse("the server is at capacity"))
        return
    try:
        claim = enrollment.parse_agent_authorization(websocket.headers.get("authorization"))
        async with gate.slot():
            outcome = await hub.authenticate(claim)  # with others connecting now (one query)
        if isinstance(outcome, Unauthorized):
            raise outcome
        identity = outcome
    except (Unauthorized, ServerBusy) as exc:
        await _deny(websocket, exc)
        return
    except SQLAlchemyError as exc:
        log.warning("agent handshake: database unavailable: %s", type(exc).__name__)
        await _deny(websocket, gate.refuse("the database is not answering"))
        return
    await websocket.accept()
    send_lock = asyncio.Lock()

    async def send(message: BaseModel | str) -> None:
        text = message if isinstance(message, str) else dump_message(message)
        async with send_lock, asyncio.timeout(SEND_TIMEOUT_S):  # no task per send
            await websocket.send_text(text)

    connection = AgentConnection(
        device_id=identity.device_id,
        tenant_id=identity.tenant_id,
        send=send,
        interval_s=hub.interval_for(identity.device_id),
    )
    registered = False
    try:
        hello = await _receive_hello(websocket, send)
        if hello is None:
            return
        if (hello.hostname, hello.agent_version) != (identity.hostname, identity.agent_version):
            async with gate.slot(), runtime.system_sessions() as session:
                await handle_message(
                    hub, session, identity, hello, transport="ws", interval_s=connection.interval_s
                )
                await session.commit()
        await send(
            Welcome(
                device_id=str(identity.device_id),
                server_time=datetime.now(UTC),
                light_heartbeat_interval_s=connection.interval_s,
                full_heartbeat_interval_s=runtime.settings.full_heartbeat_interval_s,
            )
        )
        hub.register(connection)
        registered = True
        hub.status.seen(
            identity.device_id, identity.tenant_id, transport="ws", interval_s=connection.interval_s
        )
        await hub.catch_up(identity.device_id)
        await _receive_loop(runtime, websocket, connection, identity, send)
    except (TimeoutError, WebSocketDisconnect, ConnectionError):
        pass
    except (ServerBusy, SQLAlchemyError) as exc:
        # After the upgrade there is no HTTP status left to send: 1013 means "try again later".
        log.info("closing agent socket of %s: %s", identity.device_id, type(exc).__name__)
        with contextlib.suppress(Exception):
            await websocket.close(code=1013, reason="try again later")
    finally:
        if registered:  # the agent ended its terminals and file requests with this socket
            with contextlib.suppress(Exception):
                await hub.relay.disconnected(identity.device_id)
        if registered and hub.unregister(connection):
            hub.status.offline(identity.device_id, identity.tenant_id)
            # Offline at once: do not wait for the next flush interval.
            with contextlib.suppress(Exception):
                await hub.status.flush()
        with contextlib.suppress(Exception):
            await websocket.close()


async def _receive_hello(websocket: WebSocket, send: object) -> Hello | None:
    raw = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT_S)
    try:
        message = parse_agent_message(raw)
    except ProtocolError as exc:
        message = exc
    if not isinstance(message, Hello):
        error = (
            ErrorMessage(code=message.code, message=message.message)
            if isinstance(message, ProtocolError)
            else ErrorMessage(code="hello_expected", message="the first frame must be 'hello'")
        )
        await websocket.send_text(dump_message(error))
        await websocket.close(code=1008, reason=error.code)
        return None
    return message


async def _receive_loop(
    runtime: Runtime,
    websocket: WebSocket,
    connection: AgentConnection,
    identity: enrollment.AgentIdentity,
    send: object,
) -> None:
    hub = runtime.hub
    bad_frames = 0
    while True:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        raw = frame.get("text") or frame.get("bytes") or b""
        try:
            if len(raw) > MAX_MESSAGE_BYTES:
                raise ProtocolError("message_too_large", "frame over the size limit")
            message = parse_agent_message(raw)
        except ProtocolError as exc:
            bad_frames += 1
            log.info("bad frame from %s: %s", identity.device_id, exc.code)
            await connection.send(ErrorMessage(code=exc.code, message=exc.message))
            if bad_frames > MAX_BAD_FRAMES:
                await websocket.close(code=1008, reason="too many invalid frames")
                return
            continue
        if isinstance(message, Hello):
            await connection.send(ErrorMessage(code="unexpected_hello", message="already said"))
            continue
        if isinstance(message, LightHeartbeat):  # the hot path: memory only
            hub.status.seen(
                identity.device_id,
                identity.tenant_id,
                transport="ws",
                interval_s=connection.interval_s,
                heartbeat=message,
            )
            continue
        if isinstance(message, TerminalOutput | TerminalOpened | TerminalExit | FileResponse):
            await hub.relay.from_agent(identity.device_id, message)  # memory only
            continue
        if isinstance(message, CommandAck | CommandResult):  # written in batches
            await hub.writer.room()
            if isinstance(message, CommandAck):
                hub.writer.ack(identity.tenant_id, identity.device_id, message.command_id)
            else:
                hub.writer.result(identity.tenant_id, identity.device_id, message)
            continue
        async with runtime.system_sessions() as session:
            await handle_message(
                hub,
                session,
                identity,
                message,
                transport="ws",
                interval_s=connection.interval_s,
            )
            await session.commit()
