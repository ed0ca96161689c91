"""create_app(settings): the one ASGI application (API, agent gateway, console)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steward import __version__
from steward.protocol import MAX_MESSAGE_BYTES
from steward.server.accounts.account_routes import router as account_router
from steward.server.accounts.admin_routes import router as users_router
from steward.server.accounts.routes import router as auth_router
from steward.server.audit.routes import router as audit_router
from steward.server.bus import bus_state
from steward.server.commands.policy_routes import router as command_policy_router
from steward.server.commands.routes import router as commands_router
from steward.server.commands.stream_routes import router as command_stream_router
from steward.server.devices.routes import router as devices_router
from steward.server.errors import StewardError
from steward.server.files.backup_routes import router as file_backups_router
from steward.server.files.routes import router as files_router
from steward.server.gateway.routes import router as gateway_router
from steward.server.jobs.routes import router as jobs_router
from steward.server.platform.routes import router as platform_router
from steward.server.runtime import Runtime
from steward.server.scripts.routes import router as scripts_router
from steward.server.settings import Settings, load_settings
from steward.server.tenancy.hosts import HostMiddleware
from steward.server.terminal.registry import TerminalRegistry
from steward.server.terminal.routes import router as terminal_router
from steward.server.terminal.sockets import router as terminal_socket_router
from steward.server.terminal.watching import router as terminal_watch_router
from steward.server.web import mount_console

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# What a database that is down or restarting raises: SQLAlchemy wraps the driver's errors, but
# asyncpg's failures to connect come through unwrapped (ConnectionRefusedError, TimeoutError);
# a pool with every connection stuck raises PoolTimeout. All mean "try again shortly".
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OperationalError,
    DBAPIError,
    PoolTimeout,
    ConnectionError,
    TimeoutError,
)
DATABASE_RETRY_AFTER_S = 5


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def database_unavailable(path: str, exc: Exception) -> JSONResponse:
    described = str(getattr(exc, "orig", None) or exc)
    detail = described.splitlines()[0][:200] if described else ""
    log.warning("database error on %s: %s: %s", path, type(exc).__name__, detail)
    return JSONResponse(
        error_body("database_unavailable", "the database is not answering; try again"),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


class DatabaseDownGuard:
    """503 for database failures raised outside the routes, e.g. while the host middleware
    looks up a tenant it has not cached (the routes' own failures meet the exception handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except DATABASE_DOWN as exc:
            if started:
                raise
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013})  # try again later
                return
            await database_unavailable(scope.get("path", ""), exc)(scope, _empty_receive, send)


class BodySizeLimit:
    """Refuse request bodies over the limit, by header or while streaming (413)."""

    # An agent's poll carries whole results (1 MiB of output per stream, escaped in JSON).
    AGENT_POLL = "/api/agent/v1/poll"
    # The editor saves a whole text file (the tenant's editor limit, at most 4 MiB, escaped in
    # JSON): the routes that take one, and their limit.
    EDITOR_SAVE = re.compile(r"^(/api/v1)?/devices/[0-9a-fA-F-]{36}/files/text$")
    EDITOR_SAVE_BYTES = 6 * 4 * 1024 * 1024

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.max_bytes
        if path == self.AGENT_POLL:
            limit = MAX_MESSAGE_BYTES
        elif self.EDITOR_SAVE.match(path):
            limit = max(self.max_bytes, self.EDITOR_SAVE_BYTES)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(send)
            return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            error_body(
                "payload_too_large", f"request bodies are limited to {self.max_bytes} bytes"
            ),
            status_code=413,
        )
        await response({"type": "http"}, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.create(settings)
        app.state.runtime = runtime
        # Live web terminals of this process (terminal/registry.py).
        app.state.terminals = TerminalRegistry(
            runtime.sessions,
            runtime.bus,
            runtime.hub.relay,
            runtime.presence.replica_id,
            runtime.terminal_holdings,
        )
        await runtime.start()
        try:
            yield
        finally:
            await app.state.terminals.aclose()
            await runtime.stop()

    app = FastAPI(
        title="Steward",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    _install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        # Redis down is no reason to leave the balancer: the replica polls the database instead.
        return JSONResponse(
            {
                "status": "ok",
                "database": "ok",
                "bus": bus_state(runtime.bus),
                "leader": runtime.leadership.is_leader,  # runs the periodic work
                "replica": runtime.presence.replica_id,  # as in a device's `connected_to`
                "agents_connected": runtime.hub.connection_count,
            }
        )

    app.include_router(auth_router)
    app.include_router(account_router)
    app.include_router(users_router)
    app.include_router(devices_router)
    app.include_router(commands_router)
    app.include_router(command_stream_router)
    app.include_router(command_policy_router)
    app.include_router(scripts_router)
    app.include_router(jobs_router)
    app.include_router(audit_router)
    app.include_router(terminal_router)
    app.include_router(terminal_socket_router)
    app.include_router(terminal_watch_router)
    app.include_router(files_router)
    app.include_router(file_backups_router)
    app.include_router(gateway_router)
    app.include_router(platform_router)
    mount_console(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(HostMiddleware, base_domain=settings.base_domain)
    app.add_middleware(DatabaseDownGuard)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StewardError)
    async def steward_error(request: Request, exc: StewardError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "", "message": "invalid"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return JSONResponse(error_body("invalid_input", message, details=details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        return database_unavailable(request.url.path, exc)

    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, database_error)

    @app.exception_handler(IntegrityError)  # a DBAPIError, but the database is fine
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s: %s", request.url.path, str(exc.orig)[:200])
        return JSONResponse(
            error_body("conflict", "the change conflicts with data that exists"), status_code=409
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
