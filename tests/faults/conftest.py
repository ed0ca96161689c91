"""Real agent processes and a server that can be stopped and started again on the same
database, for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.server.settings import Settings
from tests.jobs.helpers import SimAgent
from tests.support import LiveServer, SeededTenant, Seeder, run_async, wait_for

FINAL = {"succeeded", "failed", "timed_out", "cancelled", "denied", "expired"}


def agent_bin() -> str:
    """The installed `steward-agent` console script, next to this interpreter."""
    return str(Path(sys.executable).parent / "steward-agent")


class RestartableServer(LiveServer):
    """A `LiveServer` that can listen on a given port: a restarted server keeps its address,
    so agents enrolled against the first one find the second."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        super().__init__(settings)
        if port is not None:
            self.port = port
            self.url = f"http://127.0.0.1:{port}"
            self._server.config.port = port

    def restarted(self) -> RestartableServer:
        """Stop this server and start a new one (new app, new runtime) on the same database,
        data dir, secret key and port."""
        self.stop()
        restarted = RestartableServer(self.settings, port=self.port)
        restarted.start()
        return restarted


@dataclass
class RealAgent:
    """A `steward-agent` process enrolled by PIN, with its own state dir and machine id."""

    server_url: str
    state_dir: Path
    machine_id: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex}")
    device_id: str = ""
    process: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {"STEWARD_AGENT_MACHINE_ID": self.machine_id}

    @property
    def log(self) -> str:
        logs = sorted(self.state_dir.parent.glob(f"{self.state_dir.name}-run-*.log"))
        return "\n".join(path.read_text(errors="replace") for path in logs)

    def enroll(self, pin: str) -> RealAgent:
        done = subprocess.run(
            [agent_bin(), "enroll", "--server", self.server_url, "--pin", pin,
             "--state-dir", str(self.state_dir)],
            env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        self.device_id = done.stdout.strip().splitlines()[-1]
        return self

    def start(self, *extra: str) -> RealAgent:
        assert self.process is None or self.process.poll() is not None
        self.runs += 1
        log_path = self.state_dir.parent / f"{self.state_dir.name}-run-{self.runs}.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [agent_bin(), "run", "--state-dir", str(self.state_dir), *extra],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to record anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def real_agents(tmp_path: Path) -> Iterator[list[RealAgent]]:
    """Agents started in a test are stopped at its end, whatever happened."""
    started: list[RealAgent] = []
    yield started
    for agent in started:
        agent.stop()


def real_agent(
    agents: list[RealAgent], server: LiveServer, seeder: Seeder, tenant: SeededTenant, where: Path
) -> RealAgent:
    """Enroll a real agent by PIN and start it; returns once the device is online."""
    agent = RealAgent(server.url, where / f"agent-{len(agents)}")
    agent.enroll(seeder.pin(tenant))
    agents.append(agent.start())
    return agent


def wait_online(api: httpx.Client, device_id: str, timeout: float = 20) -> None:
    wait_for(lambda: api.get(f"/api/v1/devices/{device_id}").json()["online"], timeout=timeout)


def command(api: httpx.Client, command_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/commands/{command_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_final(api: httpx.Client, command_id: str, timeout: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: (c := command(api, command_id))["status"] in FINAL and c, timeout=timeout
    )
    return found


def audit(api: httpx.Client, action: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/audit/events", params={"action": action, "limit": 500})
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def enrolled_devices(settings: Settings, tenant: SeededTenant, count: int) -> list[dict[str, str]]:
    """`count` devices enrolled with PINs through the enrollment service, in one transaction
    (over HTTP, one by one, 200 of them take half a minute on PostgreSQL); the credentials
    each agent got, as the enrollment endpoint returns them."""
    from steward.protocol import EnrollRequest
    from steward.server.db.engine import standalone_session
    from steward.server.devices.enrollment import create_pin
    from steward.server.devices.enrollment import enroll as enroll_device
    from steward.server.tenancy.service import get_tenant

    secret_key = settings.effective_secret_key

    async def work() -> list[dict[str, str]]:
        async with standalone_session(settings.effective_database_url) as session:
            found = await get_tenant(session, tenant.tenant_id)
            enrolled = []
            for number in range(count):
                pin, _row, _group = await create_pin(
                    session, secret_key, found, group_name=None, ttl_s=600, created_by="faults"
                )
                request = EnrollRequest(
                    pin=pin, machine_id=f"sim-{uuid.uuid4().hex}", hostname=f"sim-{number:03d}",
                    agent_version="test", os_name="Linux",
                )  # fmt: skip
                response = await enroll_device(session, secret_key, request)
                enrolled.append(response.model_dump(mode="json"))
            await session.commit()
            return enrolled

    result: list[dict[str, str]] = run_async(work)
    return result


@dataclass
class LedgerSim:
    """A simulated agent over the poll protocol with an exactly-once ledger, like the real
    one: a dispatch of an id it already ran is answered with the stored result again (and
    counted in `redispatched`), never run again."""

    sim: SimAgent
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # command id -> result
    redispatched: list[str] = field(default_factory=list)
    unreported: list[str] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        return self.sim.device_id

    @property
    def ran(self) -> list[str]:
        return self.sim.ran

    def take(self, status: str = "succeeded") -> list[str]:
        """Poll; "run" what is new (its result is `status`); returns the new ids."""
        new = []
        for dispatch in self.sim.dispatches():
            command_id = dispatch["command_id"]
            if command_id in self.results:
                self.redispatched.append(command_id)
            else:
                self.sim.ran.append(command_id)
                new.append(command_id)
                self.results[command_id] = {
                    "type": "command.result",
                    "command_id": command_id,
                    "status": status,
                    "exit_code": 0 if status == "succeeded" else 1,
                    "stdout": f"ran {command_id}",
                }
            if command_id not in self.unreported:
                self.unreported.append(command_id)
        return new

    def report(self) -> int:
        """Send an ack and the result of everything taken and not yet reported."""
        messages: list[dict[str, Any]] = []
        for command_id in self.unreported:
            messages += [
                {"type": "command.ack", "command_id": command_id},
                self.results[command_id],
            ]
        reported = len(self.unreported)
        if messages:
            self.sim.poll(messages)
        self.unreported = []
        return reported


def sim_fleet(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant, count: int
) -> list[LedgerSim]:
    return [
        LedgerSim(SimAgent(server, creds))
        for creds in enrolled_devices(seeder.settings, tenant, count)
    ]


def change_commands(settings: Settings, *conditions: Any, **values: Any) -> int:
    """Change command rows directly (a test's way to lose a poll answer or reorder a queue);
    the number of rows changed."""
    from sqlalchemy import update

    from steward.server.commands.models import Command
    from steward.server.db.engine import standalone_session

    async def work() -> int:
        async with standalone_session(settings.effective_database_url) as session:
            outcome = await session.execute(update(Command).where(*conditions).values(**values))
            await session.commit()
            return int(outcome.rowcount)  # type: ignore[attr-defined]

    changed: int = run_async(work)
    return changed


LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
