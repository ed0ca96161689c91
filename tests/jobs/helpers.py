"""Simulated agents speaking the real protocol through the poll endpoint, for jobs tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from steward.server.db.engine import standalone_session
from tests.support import LiveServer, SeededTenant, Seeder, agent_auth, enroll, run_async


@dataclass
class SimAgent:
    """One enrolled device whose agent answers by polling; `ran` lists what it executed."""

    server: LiveServer
    creds: dict[str, str]
    ran: list[str] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        return self.creds["device_id"]

    def poll(self, messages: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        response = httpx.post(
            f"{self.server.url}/api/agent/v1/poll",
            json={"messages": messages or []},
            headers=agent_auth(self.creds),
            timeout=10,
        )
        response.raise_for_status()
        received: list[dict[str, Any]] = response.json()["messages"]
        self.cancels += [m["command_id"] for m in received if m["type"] == "command.cancel"]
        return received

    def dispatches(self) -> list[dict[str, Any]]:
        return [m for m in self.poll() if m["type"] == "command.dispatch"]

    def run_all(self, status: str = "succeeded", exit_code: int = 0) -> int:
        """Take what the server has for this device and report each as done (once)."""
        reports: list[dict[str, Any]] = []
        for dispatch in self.dispatches():
            command_id = dispatch["command_id"]
            if command_id in self.ran:
                continue
            self.ran.append(command_id)
            reports += [
                {"type": "command.ack", "command_id": command_id},
                {
                    "type": "command.result",
                    "command_id": command_id,
                    "status": status,
                    "exit_code": exit_code,
                    "stdout": f"ran {command_id}",
                },
            ]
        if reports:
            self.poll(reports)
        return len(reports) // 2


def fleet(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant, count: int, group: str | None = None
) -> list[SimAgent]:
    agents = []
    for number in range(count):
        pin = seeder.pin(tenant, group=group)
        creds = enroll(
            server, pin, machine_id=f"sim-{uuid.uuid4().hex}", hostname=f"sim-{number:03d}"
        )
        agents.append(SimAgent(server, creds))
    return agents


def in_database(server: LiveServer, statement: str, **params: Any) -> None:
    """Change rows directly (to move a deadline into the past)."""
    from sqlalchemy import text

    async def work() -> None:
        async with standalone_session(server.settings.effective_database_url) as session:
            await session.execute(text(statement), params)
            await session.commit()

    run_async(work)
