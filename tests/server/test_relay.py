"""The relay between consoles and agents (gateway/relay.py): on one process, and between two
replicas over the real Redis bus with the real Redis presence map."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio

from steward.protocol import (
    FileOp,
    FileRequest,
    FileResponse,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOutput,
    parse_server_message,
)
from steward.server.bus import AGENT_CHANNEL, Bus
from steward.server.bus.memory import InMemoryBus
from steward.server.bus.presence import Presence, RedisPresence
from steward.server.bus.redis import RedisBus
from steward.server.gateway.hub import AgentConnection
from steward.server.gateway.relay import AgentTimeout, DeviceOffline, Relay
from tests.support import wait_for_async


@dataclass
class FakeSocket:
    """What the relay sends to an agent's socket, parsed as the agent would."""

    frames: list[object] = field(default_factory=list)
    broken: bool = False

    async def send(self, frame: object) -> None:
        if self.broken:
            raise ConnectionError("gone")
        assert isinstance(frame, str)
        self.frames.append(parse_server_message(frame))


@dataclass
class Replica:
    bus: Bus
    presence: Presence
    relay: Relay
    connections: dict[uuid.UUID, AgentConnection] = field(default_factory=dict)

    def connect(self, device_id: uuid.UUID, socket: FakeSocket) -> AgentConnection:
        connection = AgentConnection(
            device_id=device_id, tenant_id=uuid.uuid4(), send=socket.send, interval_s=30
        )
        self.connections[device_id] = connection
        self.presence.connected(device_id)
        return connection


def make_replica(bus: Bus, presence: Presence) -> Replica:
    connections: dict[uuid.UUID, AgentConnection] = {}
    relay = Relay(bus, presence, connections.get)

    async def on_agents(message: dict[str, object]) -> None:  # what AgentHub does with `relay`
        if message.get("kind") != "relay":
            return
        connection = connections.get(uuid.UUID(str(message["device_id"])))
        if connection is not None:
            await relay.on_bus(connection, dict(message))

    bus.subscribe(AGENT_CHANNEL, on_agents)
    return Replica(bus, presence, relay, connections)


def file_request(**overrides: object) -> FileRequest:
    values: dict[str, object] = {
        "request_id": uuid.uuid4().hex,
        "op": FileOp.STAT,
        "path": "/tmp",
        "roots": ["/tmp"],
    }
    values.update(overrides)
    return FileRequest.model_validate(values)


async def answer_requests(
    relay: Relay, device_id: uuid.UUID, socket: FakeSocket, seen: int = 0
) -> None:
    """Play the agent: answer every file request that arrives on `socket`."""
    while True:
        for frame in socket.frames[seen:]:
            seen += 1
            if isinstance(frame, FileRequest):
                await relay.from_agent(
                    device_id,
                    FileResponse(request_id=frame.request_id, ok=True, result={"p": frame.path}),
                )
        await asyncio.sleep(0.005)


# ---- one process -----------------------------------------------------------------------------


async def test_a_request_to_a_local_agent_is_answered() -> None:
    replica = make_replica(InMemoryBus(), Presence())
    device, socket = uuid.uuid4(), FakeSocket()
    replica.connect(device, socket)
    agent = asyncio.create_task(answer_requests(replica.relay, device, socket))
    try:
        response = await replica.relay.request(device, file_request(path="/tmp/x"))
    finally:
        agent.cancel()
    assert response.ok and response.result == {"p": "/tmp/x"}


async def test_an_agent_connected_nowhere_is_offline_at_once() -> None:
    replica = make_replica(InMemoryBus(), Presence())
    with pytest.raises(DeviceOffline):
        await replica.relay.request(uuid.uuid4(), file_request(), timeout_s=5)
    with pytest.raises(DeviceOffline):
        await replica.relay.send(uuid.uuid4(), TerminalOpen(session_id="s1"))


async def test_an_agent_that_never_answers_times_out() -> None:
    replica = make_replica(InMemoryBus(), Presence())
    device = uuid.uuid4()
    replica.connect(device, FakeSocket())
    with pytest.raises(AgentTimeout):
        await replica.relay.request(device, file_request(), timeout_s=0.1)


async def test_a_waiting_request_fails_when_the_agent_disconnects() -> None:
    replica = make_replica(InMemoryBus(), Presence())
    device = uuid.uuid4()
    replica.connect(device, FakeSocket())
    waiting = asyncio.create_task(replica.relay.request(device, file_request(), timeout_s=10))
    await asyncio.sleep(0.02)
    await replica.relay.disconnected(device)
    with pytest.raises(DeviceOffline):
        await waiting


async def test_an_agent_cannot_write_into_another_devices_session() -> None:
    replica = make_replica(InMemoryBus(), Presence())
    mine, other = uuid.uuid4(), uuid.uuid4()
    replica.connect(mine, FakeSocket())
    replica.connect(other, FakeSocket())
    heard: list[object] = []

    async def on_message(message: object) -> None:
        heard.append(message)

    replica.relay.listen("s1", on_message)
    await replica.relay.send(mine, TerminalOpen(session_id="s1"))
    await replica.relay.from_agent(other, TerminalOutput(session_id="s1", seq=0, data="forged"))
    await replica.relay.from_agent(mine, TerminalOutput(session_id="s1", seq=0, data="real"))
    assert [m.data for m in heard if isinstance(m, TerminalOutput)] == ["real"]
    with pytest.raises(Exception, match="another device"):
        await replica.relay.send(other, TerminalInput(session_id="s1", data="x"))


# ---- two replicas over Redis -----------------------------------------------------------------


@pytest.fixture
async def two_replicas(redis_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    prefix = f"steward-test-{uuid.uuid4().hex[:12]}"
    replicas = []
    for _ in range(2):
        bus = RedisBus(redis_url, prefix=prefix, timeout_s=10)
        client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=15)
        replicas.append(make_replica(bus, RedisPresence(client, prefix=prefix, ttl_s=30)))
    for replica in replicas:
        await replica.bus.start()
    await wait_for_async(lambda: all(r.bus.healthy for r in replicas), timeout=15)  # type: ignore[attr-defined]
    yield replicas[0], replicas[1]
    for replica in replicas:
        await replica.relay.aclose()
        await replica.presence.stop()
        await replica.bus.stop()


async def test_a_console_on_one_replica_reaches_an_agent_on_the_other(
    two_replicas: tuple[Replica, Replica],
) -> None:
    holder, console = two_replicas
    device, socket = uuid.uuid4(), FakeSocket()
    holder.connect(device, socket)
    await holder.presence.flush()
    agent = asyncio.create_task(answer_requests(holder.relay, device, socket))
    try:
        response = await console.relay.request(device, file_request(path="/tmp/far"), timeout_s=10)
        assert response.result == {"p": "/tmp/far"}

        # A terminal: frames both ways, in order, and the end when the agent leaves.
        heard: list[object] = []

        async def on_message(message: object) -> None:
            heard.append(message)

        console.relay.listen("t1", on_message)
        await console.relay.send(device, TerminalOpen(session_id="t1", cols=100, rows=30))
        await console.relay.send(device, TerminalInput(session_id="t1", data="ls\r"))
        await wait_for_async(lambda: isinstance(socket.frames[-1], TerminalInput), timeout=10)
        for seq in range(50):
            await holder.relay.from_agent(
                device, TerminalOutput(session_id="t1", seq=seq, data=f"{seq},")
            )
        await wait_for_async(lambda: len(heard) == 50, timeout=10)
        assert [m.seq for m in heard if isinstance(m, TerminalOutput)] == list(range(50))
        await holder.relay.disconnected(device)
        await wait_for_async(lambda: isinstance(heard[-1], TerminalExit), timeout=10)
    finally:
        agent.cancel()


async def test_an_agent_connected_to_no_replica_is_offline(
    two_replicas: tuple[Replica, Replica],
) -> None:
    _holder, console = two_replicas
    with pytest.raises(DeviceOffline):
        await console.relay.request(uuid.uuid4(), file_request(), timeout_s=5)
