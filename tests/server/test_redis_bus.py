"""The Redis bus between replicas, against the real Redis and two real servers on PostgreSQL.

Redis is expected at 127.0.0.1:6379 (STEWARD_TEST_REDIS_URL to change it); without it these
tests are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from steward.server.bus import BUS_DOWN, bus_state
from steward.server.bus.redis import RedisBus
from steward.server.settings import Settings
from tests.support import (
    Databases,
    LiveServer,
    SeededTenant,
    Seeder,
    agent_auth,
    closed_port_redis_url,
    enroll,
    free_port,
    login,
)


def _recorder(into: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def handler(message: dict[str, Any]) -> None:
        into.append(message)

    return handler


async def _until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


# ---- the bus alone ---------------------------------------------------------------------------


async def test_a_message_reaches_every_replica_once(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    a, b = RedisBus(redis_url, prefix=prefix), RedisBus(redis_url, prefix=prefix)
    stranger = RedisBus(redis_url, prefix=f"test-{uuid.uuid4().hex}")  # another deployment
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    got_stranger: list[dict[str, Any]] = []
    a.subscribe("agents", _recorder(got_a))
    b.subscribe("agents", _recorder(got_b))
    stranger.subscribe("agents", _recorder(got_stranger))
    b.subscribe("tenants", _recorder(got_b))
    for bus in (a, b, stranger):
        await bus.start()
    try:
        await _until(lambda: a.healthy and b.healthy and stranger.healthy)
        assert bus_state(a) == "redis"
        await a.publish("agents", {"kind": "wake", "device_id": "d-1"})
        await b.publish("agents", {"kind": "cancel", "device_id": "d-2"})
        await a.publish("tenants", {"kind": "changed", "slugs": ["x"]})  # A has no handler
        await _until(lambda: len(got_a) == 2 and len(got_b) == 3)
        await asyncio.sleep(0.5)  # a second copy (the echo through Redis) would be here by now
        assert got_a == [
            {"kind": "wake", "device_id": "d-1"},
            {"kind": "cancel", "device_id": "d-2"},
        ]
        assert sorted(got_b, key=str) == sorted(
            [
                {"kind": "wake", "device_id": "d-1"},
                {"kind": "cancel", "device_id": "d-2"},
                {"kind": "changed", "slugs": ["x"]},
            ],
            key=str,
        )
        assert got_stranger == []
    finally:
        for bus in (a, b, stranger):
            await bus.stop()


async def test_a_failing_handler_does_not_stop_the_others(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    a, b = RedisBus(redis_url, prefix=prefix), RedisBus(redis_url, prefix=prefix)
    got: list[dict[str, Any]] = []

    async def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    b.subscribe("agents", broken)
    b.subscribe("agents", _recorder(got))
    await a.start()
    await b.start()
    try:
        await _until(lambda: a.healthy and b.healthy)
        for n in range(3):
            await a.publish("agents", {"n": n})
        await _until(lambda: len(got) == 3)
        assert b.healthy
    finally:
        await a.stop()
        await b.stop()


async def test_with_redis_down_publish_neither_raises_nor_waits(redis_url: str) -> None:
    bus = RedisBus(closed_port_redis_url(), prefix=f"test-{uuid.uuid4().hex}")
    got: list[dict[str, Any]] = []
    bus.subscribe("agents", _recorder(got))
    await bus.start()
    try:
        await asyncio.sleep(0.5)  # a few connection attempts
        assert not bus.healthy
        assert bus_state(bus) == BUS_DOWN
        started = time.monotonic()
        for n in range(100):
            await bus.publish("agents", {"n": n})
        assert time.monotonic() - started < 0.1
        await _until(lambda: len(got) == 100)  # this process's own handlers still hear it
    finally:
        await bus.stop()


class _Proxy:
    """A TCP relay to Redis that the test can cut and restore: Redis "going away"."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_the_bus_reconnects_when_redis_comes_back(redis_url: str) -> None:
    proxy = _Proxy(int(redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]))
    await proxy.open()
    prefix = f"test-{uuid.uuid4().hex}"
    flaky = RedisBus(f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix, timeout_s=1.0)
    steady = RedisBus(redis_url, prefix=prefix)
    got: list[dict[str, Any]] = []
    flaky.subscribe("agents", _recorder(got))
    await flaky.start()
    await steady.start()
    try:
        await _until(lambda: flaky.healthy and steady.healthy)
        first_epoch = flaky.epoch
        await proxy.cut()
        await _until(lambda: not flaky.healthy)
        await steady.publish("agents", {"kind": "lost"})  # a hint nobody hears: no error
        await flaky.publish("agents", {"kind": "local"})
        await proxy.open()
        await _until(lambda: flaky.healthy, timeout=10)
        assert flaky.epoch > first_epoch  # the runtime polls once to catch up
        await steady.publish("agents", {"kind": "after"})
        await _until(lambda: {"kind": "after"} in got)
        assert {"kind": "lost"} not in got and {"kind": "local"} in got
    finally:
        await flaky.stop()
        await steady.stop()
        with contextlib.suppress(Exception):
            await proxy.cut()


# ---- two replicas on one PostgreSQL database ---------------------------------------------------


def _replica(database_url: str, data_dir: Path, redis_url: str, secret: str) -> LiveServer:
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=secret,  # replicas share their secret, as in production
        redis_url=redis_url,
        light_heartbeat_interval_s=1.0,
        status_flush_interval_s=0.2,
        job_sweep_interval_s=0.5,
    )
    return LiveServer(settings).start()


@contextlib.contextmanager
def _pair(
    databases: Databases, tmp: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[LiveServer, LiveServer]]:
    url = databases.create("postgresql")
    secret = "test-secret-" + uuid.uuid4().hex
    a = _replica(url, tmp.mktemp("replica-a"), redis_url, secret)
    try:
        b = _replica(url, tmp.mktemp("replica-b"), redis_url, secret)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


@pytest.fixture(scope="module")
def replicas(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[LiveServer, LiveServer]]:
    with _pair(databases, tmp_path_factory, redis_url) as pair:
        yield pair


@pytest.fixture(scope="module")
def replicas_without_redis(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[LiveServer, LiveServer]]:
    with _pair(databases, tmp_path_factory, closed_port_redis_url()) as pair:
        yield pair


@contextlib.contextmanager
def _agent(server: LiveServer, creds: dict[str, str]) -> Iterator[ClientConnection]:
    with connect(server.ws_url, additional_headers=agent_auth(creds), open_timeout=10) as ws:
        ws.send(json.dumps({"type": "hello", "agent_version": "9.9", "hostname": "pc-redis"}))
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        yield ws


def _next_dispatch(ws: ClientConnection, timeout: float) -> dict[str, Any] | None:
    """The next command.dispatch within `timeout` s, or None."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            return None
        if message["type"] == "command.dispatch":
            return dict(message)
    return None


def _submit(api: httpx.Client, device_id: str, text: str) -> str:
    response = api.post(
        f"/api/v1/devices/{device_id}/commands",
        json={"type": "shell", "payload": {"command": f"echo {text}"}},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _tenant_and_agent(a: LiveServer) -> tuple[SeededTenant, dict[str, str]]:
    seeder = Seeder(a.settings)
    tenant = seeder.tenant()
    return tenant, enroll(a, seeder.pin(tenant))


def test_a_command_submitted_on_b_reaches_the_agent_on_a_at_once(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    tenant, creds = _tenant_and_agent(a)
    with _agent(a, creds) as ws, login(b, tenant) as api_b:
        assert _next_dispatch(ws, 0.5) is None  # nothing queued yet
        for text in ("one", "two"):
            started = time.monotonic()
            command_id = _submit(api_b, creds["device_id"], text)
            dispatch = _next_dispatch(ws, 1.0)
            assert dispatch is not None, "no dispatch within 1 s"
            assert time.monotonic() - started < 1.0
            assert dispatch["command_id"] == command_id
        assert _next_dispatch(ws, 0.5) is None  # each exactly once
        assert a.app.state.runtime.hub.is_connected(uuid.UUID(creds["device_id"]))
        assert not b.app.state.runtime.hub.is_connected(uuid.UUID(creds["device_id"]))
    for server in (a, b):
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 200 and health.json()["bus"] == "redis"


def test_with_redis_down_the_replicas_poll_the_database(
    replicas_without_redis: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas_without_redis
    leaders = []
    for server in (a, b):
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 200, health.text
        body = health.json()
        assert (body["status"], body["database"], body["bus"]) == ("ok", "ok", BUS_DOWN)
        leaders.append(body["leader"])
    assert sorted(leaders) == [False, True]  # one database: one of them runs periodic work
    tenant, creds = _tenant_and_agent(a)
    with _agent(a, creds) as ws, login(b, tenant) as api_b:
        for text in ("one", "two"):
            started = time.monotonic()
            command_id = _submit(api_b, creds["device_id"], text)
            dispatch = _next_dispatch(ws, 4.0)
            assert dispatch is not None, "the fallback did not deliver within 4 s"
            assert dispatch["command_id"] == command_id
            assert time.monotonic() - started < 4.0
        assert _next_dispatch(ws, 2.5) is None  # a poll later: not sent twice
        # A command submitted on the agent's own replica still goes out at once.
        with login(a, tenant) as api_a:
            started = time.monotonic()
            command_id = _submit(api_a, creds["device_id"], "local")
            dispatch = _next_dispatch(ws, 1.0)
            assert dispatch is not None and dispatch["command_id"] == command_id
            assert time.monotonic() - started < 1.0


def test_with_redis_down_a_cancel_on_b_reaches_the_agent_on_a(
    replicas_without_redis: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas_without_redis
    tenant, creds = _tenant_and_agent(a)
    with _agent(a, creds) as ws, login(b, tenant) as api_b:
        command_id = _submit(api_b, creds["device_id"], "long")
        dispatch = _next_dispatch(ws, 4.0)
        assert dispatch is not None and dispatch["command_id"] == command_id
        ws.send(json.dumps({"type": "command.ack", "command_id": command_id}))
        running = lambda: api_b.get(f"/api/v1/commands/{command_id}").json()["status"]  # noqa: E731
        deadline = time.monotonic() + 5
        while running() != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        assert api_b.post(f"/api/v1/commands/{command_id}/cancel").status_code == 200
        cancels = []
        while time.monotonic() - started < 4.0 and not cancels:
            try:
                message = json.loads(ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            if message["type"] == "command.cancel":
                cancels.append(message)
        assert cancels and cancels[0]["command_id"] == command_id, "no cancel within 4 s"
