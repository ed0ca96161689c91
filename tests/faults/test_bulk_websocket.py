"""A bulk job to 300 agents on WebSockets: dispatches travel on the bus without a query per
device, acks and results are written in batches (commands/batch.py), and still every command
runs once, keeps its history in order, and is audited on an intact chain. An agent cannot
report on another device's command, and a repeated result changes nothing."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.faults.conftest import enrolled_devices, wait_final
from tests.support import LiveServer, Seeder, agent_auth, login, wait_for

DEVICES = 300


class WsFleet:
    """Light agents on the real WebSocket protocol, in one background event loop."""

    def __init__(self, server: LiveServer, credentials: list[dict[str, str]]) -> None:
        self.server = server
        self.credentials = credentials
        self.welcomed = 0
        self.received: dict[str, list[str]] = {c["device_id"]: [] for c in credentials}
        self.sockets: dict[str, ClientConnection] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> WsFleet:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._spawn(), self.loop).result(10)
        return self

    async def _spawn(self) -> None:
        self._tasks = [asyncio.create_task(self._agent(creds)) for creds in self.credentials]

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def send(self, device_id: str, message: dict[str, Any]) -> None:
        socket = self.sockets[device_id]
        asyncio.run_coroutine_threadsafe(socket.send(json.dumps(message)), self.loop).result(5)

    async def _agent(self, creds: dict[str, str]) -> None:
        while True:  # like a real agent: a handshake refused while the server is busy is retried
            try:
                return await self._session(creds)
            except InvalidStatus as refused:
                assert refused.response.status_code == 503, refused
                await asyncio.sleep(random.uniform(0.2, 1.0))

    async def _session(self, creds: dict[str, str]) -> None:
        device_id = creds["device_id"]
        async with connect(
            self.server.ws_url, additional_headers=agent_auth(creds), open_timeout=60
        ) as socket:
            hello = {"type": "hello", "protocol_version": 1, "agent_version": "test",
                     "hostname": f"ws-{device_id[:8]}"}  # fmt: skip
            await socket.send(json.dumps(hello))
            assert json.loads(await socket.recv())["type"] == "welcome"
            self.sockets[device_id] = socket
            self.welcomed += 1
            async for raw in socket:
                message = json.loads(raw)
                if message.get("type") != "command.dispatch":
                    continue
                command_id = message["command_id"]
                self.received[device_id].append(command_id)
                await socket.send(json.dumps({"type": "command.ack", "command_id": command_id}))
                result = {
                    "type": "command.result",
                    "command_id": command_id,
                    "status": "succeeded",
                    "exit_code": 0,
                    "stdout": f"ran {command_id}",
                }
                await socket.send(json.dumps(result))


@pytest.fixture
def statements(server: LiveServer) -> Iterator[list[str]]:
    """Every SQL statement the server runs while the test does."""
    seen: list[str] = []
    engine = server.app.state.runtime.engine.sync_engine

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_bulk_job_to_websocket_agents_is_batched_and_exactly_once(
    server: LiveServer, seeder: Seeder, statements: list[str]
) -> None:
    tenant = seeder.tenant()
    fleet = WsFleet(server, enrolled_devices(seeder.settings, tenant, DEVICES)).start()
    try:
        wait_for(lambda: fleet.welcomed == DEVICES, timeout=60)
        with login(server, tenant) as api:
            statements.clear()
            response = api.post(
                "/api/v1/jobs",
                json={"type": "shell", "payload": {"command": "true"}, "target": {"all": True}},
            )
            assert response.status_code == 201, response.text
            job_id = response.json()["id"]

            def finished() -> dict[str, Any] | None:
                job = api.get(f"/api/v1/jobs/{job_id}").json()
                return job if job["finished_at"] else None

            job = wait_for(finished, timeout=60)
            ran = len(statements)
            print(f"{ran} statements for a job to {DEVICES} WebSocket agents")
            assert job["status"] == "succeeded" and job["counts"] == {"succeeded": DEVICES}, job
            # Batched: far fewer statements than devices (one query and one transaction per
            # device per step before; the background flushes and sweeps count here too).
            assert ran < DEVICES, f"{ran} statements for {DEVICES} devices"
            assert all(len(ids) == 1 for ids in fleet.received.values())

            first, second = fleet.credentials[0]["device_id"], fleet.credentials[1]["device_id"]
            theirs = fleet.received[second][0]
            detail = wait_final(api, theirs)
            assert [t["status"] for t in detail["transitions"]] == [
                "held", "queued", "sent", "running", "succeeded"
            ]  # fmt: skip
            # Another device's command, and a repeat of its own result: neither changes a thing.
            forged = {"type": "command.result", "command_id": theirs, "status": "failed",
                      "exit_code": 9, "stdout": "forged"}  # fmt: skip
            fleet.send(first, forged)
            fleet.send(second, forged)
            fleet.send(second, {"type": "command.ack", "command_id": str(uuid.uuid4())})
            wait_for(lambda: len(server.app.state.runtime.hub.writer) == 0, timeout=5)
            again = wait_final(api, theirs)
            assert (again["status"], again["stdout"]) == ("succeeded", f"ran {theirs}")
            assert len(again["transitions"]) == len(detail["transitions"])

            def all_audited() -> bool:
                events = api.get(
                    "/api/v1/audit/events", params={"action": "command.finished", "limit": 500}
                ).json()["events"]
                return len(events) == DEVICES

            wait_for(all_audited, timeout=20)
            verified = api.get("/api/v1/audit/verify").json()
            assert verified["ok"] is True, verified
    finally:
        fleet.stop()
