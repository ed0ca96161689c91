"""Helpers for the agent's tests: builders for dispatches and states, and `FakeServer`, a
small stand-in for the server's agent WebSocket endpoint (the real server is exercised by the
end-to-end tests)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from steward.agent import Agent, AgentState, Collector
from steward.protocol import CommandDispatch, CommandType, Welcome, dump_message

AGENT_ID = "agent-1"
AGENT_SECRET = "s3cret-value"


def _make_dispatch(
    command: str,
    *,
    timeout_s: float = 10,
    interpreter: str | None = None,
    command_id: str | None = None,
) -> CommandDispatch:
    payload: dict[str, Any] = {"command": command}
    if interpreter is not None:
        payload["interpreter"] = interpreter
    return CommandDispatch(
        command_id=command_id or uuid.uuid4().hex,
        command_type=CommandType.SHELL,
        payload=payload,
        timeout_s=timeout_s,
    )


def _make_state(server_url: str = "http://127.0.0.1:9", **overrides: str) -> AgentState:
    values: dict[str, Any] = {
        "server_url": server_url,
        "agent_id": AGENT_ID,
        "agent_secret": AGENT_SECRET,
        "device_id": "device-1",
        "tenant": "acme",
    }
    return AgentState(**{**values, **overrides})


MakeDispatch = Callable[..., CommandDispatch]
MakeState = Callable[..., AgentState]


@pytest.fixture
def make_dispatch() -> MakeDispatch:
    """`make_dispatch("echo hi", timeout_s=5, interpreter="bash", command_id="c-1")`"""
    return _make_dispatch


@pytest.fixture
def make_state() -> MakeState:
    """`make_state(server_url, **fields)`: an enrolled state with test credentials."""
    return _make_state


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


class FakeServer:
    """Speaks the agent WebSocket protocol like the server would, and records what it hears.

    `reject` makes handshakes fail: (status, error code, Retry-After or None)."""

    def __init__(self) -> None:
        self.url = ""
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.handshakes: list[float] = []
        self.close_codes: list[int | None] = []
        self.reject: tuple[int, str, str | None] | None = None
        self.intervals = (30.0, 3600.0)
        self.refuse_hello: str | None = None  # an error code to answer `hello` with
        self.close_after_hello: int | None = None  # a close code to answer `hello` with
        self._connection: ServerConnection | None = None
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._check_request
        )
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(asyncio.get_running_loop().time())
        if self.reject is not None:
            status, code, retry_after = self.reject
            response = connection.respond(status, _error(code))
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            return response
        if request.headers.get("Authorization") != f"Agent {AGENT_ID}:{AGENT_SECRET}":
            return connection.respond(401, _error("agent_unauthorized"))
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        self._connection = connection
        self.received.put_nowait(json.loads(await connection.recv()))
        if self.close_after_hello is not None:
            await connection.close(code=self.close_after_hello, reason="try again later")
            return
        if self.refuse_hello is not None:
            await connection.send(
                json.dumps({"type": "error", "code": self.refuse_hello, "message": "no"})
            )
            await connection.close(code=1008, reason=self.refuse_hello)
            return
        light_s, full_s = self.intervals
        welcome = Welcome(
            device_id="device-1",
            server_time=datetime.now(UTC),
            light_heartbeat_interval_s=light_s,
            full_heartbeat_interval_s=full_s,
        )
        await connection.send(dump_message(welcome))
        try:
            async for frame in connection:
                self.received.put_nowait(json.loads(frame))
        finally:
            self.close_codes.append(connection.close_code)

    async def send(self, message: Any) -> None:
        assert self._connection is not None
        await self._connection.send(dump_message(message))

    async def expect(self, message_type: str, *, timeout: float = 10) -> dict[str, Any]:
        """The next received message of this type (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.received.get()
                if message["type"] == message_type:
                    return message

    def drain(self) -> list[dict[str, Any]]:
        messages = []
        while not self.received.empty():
            messages.append(self.received.get_nowait())
        return messages


def _error(code: str) -> str:
    return json.dumps({"error": {"code": code, "message": f"refused: {code}"}})


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def collector() -> Collector:
    return Collector()


@pytest.fixture
async def start_agent(
    state_dir: Path, collector: Collector
) -> AsyncIterator[Callable[..., tuple[Agent, asyncio.Task[None]]]]:
    started: list[tuple[Agent, asyncio.Task[None]]] = []

    def start(state: AgentState, **options: Any) -> tuple[Agent, asyncio.Task[None]]:
        agent = Agent(state, state_dir=state_dir, collector=collector, **options)
        task = asyncio.create_task(agent.run())
        started.append((agent, task))
        return agent, task

    yield start
    for agent, task in started:
        agent.stop()
        async with asyncio.timeout(10):
            await task
