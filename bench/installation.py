"""A fresh installation for a benchmark run: a `steward serve` process on a new SQLite file, one
tenant with an administrator, and N devices enrolled through the enrollment service in one
transaction (over HTTP, one by one, thousands would take minutes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
TENANT = "bench"
ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path) -> dict[str, str]:
    return os.environ | {
        "STEWARD_DATA_DIR": str(data_dir),
        "STEWARD_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'steward.db'}",
        "STEWARD_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "STEWARD_LIGHT_HEARTBEAT_INTERVAL_S": "30",
        "STEWARD_MAX_AGENT_CONNECTIONS": "19000",
        "STEWARD_LOG_LEVEL": "warning",
    }


async def populate(env: dict[str, str], agents: int) -> list[dict[str, str]]:
    """Migrate, create the tenant and its admin, enroll `agents` devices: their credentials."""
    subprocess.run([str(BIN / "steward"), "db", "upgrade"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return await _populate(env, agents)


async def _populate(env: dict[str, str], agents: int) -> list[dict[str, str]]:
    from steward.protocol import EnrollRequest
    from steward.server.accounts.models import Role
    from steward.server.accounts.service import create_user
    from steward.server.db.engine import standalone_session
    from steward.server.devices.enrollment import create_pin, enroll
    from steward.server.tenancy.service import create_tenant

    secret_key = env["STEWARD_SECRET_KEY"]
    async with standalone_session(env["STEWARD_DATABASE_URL"]) as session:
        tenant = await create_tenant(session, TENANT, "Bench")
        await create_user(session, tenant, ADMIN_EMAIL, PASSWORD, Role.ADMIN)
        enrolled = []
        for number in range(agents):
            pin, _row, _group = await create_pin(
                session, secret_key, tenant, group_name=None, ttl_s=3600, created_by="bench"
            )
            request = EnrollRequest(
                pin=pin, machine_id=f"bench-{uuid.uuid4().hex}", hostname=f"sim-{number:05d}",
                agent_version="bench", os_name="Linux",
            )  # fmt: skip
            response = await enroll(session, secret_key, request)
            enrolled.append(response.model_dump(mode="json"))
        await session.commit()
    return enrolled


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/agent/v1/ws"

    @property
    def tenant_host(self) -> str:
        return f"{TENANT}.localhost:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_server(env: dict[str, str], log: Path) -> Server:
    port = free_port()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(BIN / "steward"), "serve", "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(process, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not answer within 60 s; see {log}")


def tenant_client(server: Server) -> httpx.AsyncClient:
    """An API client on the tenant's host; `log_in` it before use."""
    return httpx.AsyncClient(base_url=server.url, timeout=60, headers={"Host": server.tenant_host})


async def log_in(client: httpx.AsyncClient) -> None:
    """Give the client the tenant admin's bearer token."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}
    )
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
