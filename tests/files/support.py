"""A tenant with real agent processes on this machine, each allowed one directory of its own."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support import (
    LiveServer,
    SeededTenant,
    Seeder,
    login,
    run_async,
    start_agent_process,
    stop_process,
    wait_for,
)


@dataclass
class Agent:
    device_id: str
    base: Path  # holds `root` (the allowed directory) and `outside.txt` (not allowed)
    process: subprocess.Popen[bytes]

    @property
    def root(self) -> Path:
        return self.base / "root"


def start_agent(server: LiveServer, seeder: Seeder, tenant: SeededTenant, base: Path) -> Agent:
    """Enroll an agent process by PIN and start it; its device is online when this returns."""
    (base / "root").mkdir(parents=True)
    (base / "outside.txt").write_text("outside")
    process = start_agent_process(server.url, seeder.pin(tenant), base, f"files-{uuid.uuid4().hex}")
    return Agent("", base, process)  # the device id: see `build_world`


def stop(agent: Agent) -> None:
    stop_process(agent.process)


@dataclass
class World:
    server: LiveServer
    seeder: Seeder
    tenant: SeededTenant
    agents: list[Agent] = field(default_factory=list)

    def api(self, email: str | None = None) -> httpx.Client:
        client = login(self.server, self.tenant, email)
        client.timeout = httpx.Timeout(60)
        return client

    def policy(self, **changes: Any) -> dict[str, Any]:
        with self.api() as api:
            current = api.get("/api/v1/tenant/file-policy").json()
            response = api.put("/api/v1/tenant/file-policy", json=current | changes)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def backdate_upload(self, upload_id: str, by: timedelta) -> None:
        """Move an upload's start back in time, as if its browser had closed `by` ago."""
        from sqlalchemy import update

        from steward.server.db.base import utcnow
        from steward.server.db.engine import standalone_session
        from steward.server.files.models import FileUpload

        async def work() -> None:
            async with standalone_session(self.server.settings.effective_database_url) as session:
                await session.execute(
                    update(FileUpload)
                    .where(FileUpload.id == uuid.UUID(upload_id))
                    .values(created_at=utcnow() - by)
                )
                await session.commit()

        run_async(work)


def build_world(server: LiveServer, seeder: Seeder, tmp: Path, agents: int = 2) -> World:
    tenant = seeder.tenant()
    world = World(server, seeder, tenant)
    known: set[str] = set()
    with world.api() as api:
        for number in range(agents):
            agent = start_agent(server, seeder, tenant, tmp / f"agent{number}")
            world.agents.append(agent)

            def new_online(api: httpx.Client = api) -> str | None:
                for device in api.get("/api/v1/devices").json():
                    if device["id"] not in known and device["online"]:
                        return str(device["id"])
                return None

            agent.device_id = wait_for(new_online, timeout=20)
            known.add(agent.device_id)
    world.policy(linux_roots=[str(a.root) for a in world.agents])
    return world


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
