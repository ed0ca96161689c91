"""A fresh installation for a benchmark run: a `steward serve` process (one or several workers) on
a new SQLite file or a new PostgreSQL database (created on 127.0.0.1:5432 as user postgres and
dropped at the end), optionally with Redis as the bus; one tenant with an administrator, and N
devices enrolled through the enrollment service in one transaction (over HTTP, one by one,
thousands would take minutes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

BIN = Path(sys.executable).parent
TENANT = "bench"
POLL_TENANT = "bench-poll"  # the HTTP short-poll devices
ADMIN_EMAIL = "admin@bench.example"
PASSWORD = "bench-password-1"
PG_HOST, PG_PORT, PG_ADMIN = "127.0.0.1", 5432, "postgres"
# The server reaches PostgreSQL as an ordinary role, as in production (row-level security holds
# the table owner; a superuser would pass through it).
PG_APP_ROLE = "steward_app"
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _pg_admin(sql: str, database: str = "postgres") -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_ADMIN, database=database, timeout=5
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@dataclass
class Installation:
    """Where the server's data lives, and the environment it runs with."""

    data_dir: Path
    database: str  # "sqlite" or "postgres"
    workers: int = 1
    redis: bool = False
    port: int = field(default_factory=free_port)  # kept across restarts
    pg_name: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.env["STEWARD_DATABASE_URL"]

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "steward.db"

    async def create(self) -> None:
        """Create the database (PostgreSQL) and the server's environment."""
        if self.workers > 1 and (self.database != "postgres" or not self.redis):
            raise SystemExit("--workers > 1 needs --database postgres and --redis")
        if self.database == "postgres":
            self.pg_name = f"steward_bench_{uuid.uuid4().hex[:10]}"
            await _pg_admin(
                "DO $$ BEGIN "
                f"CREATE ROLE {PG_APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
            await _pg_admin(f'CREATE DATABASE "{self.pg_name}" OWNER "{PG_APP_ROLE}"')
            url = f"postgresql+asyncpg://{PG_APP_ROLE}@{PG_HOST}:{PG_PORT}/{self.pg_name}"
        else:
            url = f"sqlite+aiosqlite:///{self.sqlite_path}"
        self.env = os.environ | {
            "STEWARD_DATA_DIR": str(self.data_dir),
            "STEWARD_DATABASE_URL": url,
            "STEWARD_SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "STEWARD_LIGHT_HEARTBEAT_INTERVAL_S": "30",
            "STEWARD_MAX_AGENT_CONNECTIONS": "19000",
            "STEWARD_LOG_LEVEL": os.environ.get("STEWARD_LOG_LEVEL", "warning"),
            "STEWARD_TIMING_HEADERS": "1",  # X-Steward-Committed-At on single commands
            "STEWARD_REDIS_URL": REDIS_URL if self.redis else "",
        }

    async def drop(self) -> None:
        if self.pg_name:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def describe(self) -> str:
        database = "PostgreSQL" if self.database == "postgres" else "SQLite (WAL)"
        bus = "Redis bus" if self.redis else "in-process bus"
        return f"{database}, {bus}, {self.workers} server worker process(es)"


async def populate(
    installation: Installation, agents: int, pollers: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Migrate; create tenant `bench` with an admin and `agents` devices, and tenant
    `bench-poll` with `pollers` devices (apart, so that "all devices" means the simulated
    agents). Returns both lists of device credentials."""
    env = installation.env
    subprocess.run([str(BIN / "steward"), "db", "upgrade"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    fleet = await _populate(env, TENANT, agents)
    return fleet, (await _populate(env, POLL_TENANT, pollers) if pollers else [])


async def _populate(env: dict[str, str], slug: str, agents: int) -> list[dict[str, str]]:
    from steward.protocol import EnrollRequest
    from steward.server.accounts.models import Role
    from steward.server.accounts.service import create_user
    from steward.server.db.engine import standalone_session
    from steward.server.devices.enrollment import create_pin, enroll
    from steward.server.tenancy.service import create_tenant

    secret_key = env["STEWARD_SECRET_KEY"]
    async with standalone_session(env["STEWARD_DATABASE_URL"]) as session:
        tenant = await create_tenant(session, slug, slug.title())
        await create_user(session, tenant, ADMIN_EMAIL, PASSWORD, Role.ADMIN)
        enrolled = []
        for number in range(agents):
            pin, _row, _group = await create_pin(
                session, secret_key, tenant, group_name=None, ttl_s=3600, created_by="bench"
            )
            request = EnrollRequest(
                pin=pin, machine_id=f"bench-{uuid.uuid4().hex}", hostname=f"{slug}-{number:05d}",
                agent_version="bench", os_name="Linux",
            )  # fmt: skip
            response = await enroll(session, secret_key, request)
            # The hostname travels with the credentials: the agent says it again in `hello`.
            enrolled.append(response.model_dump(mode="json") | {"hostname": request.hostname})
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

    def tenant_host(self, tenant: str = TENANT) -> str:
        return f"{tenant}.localhost:{self.port}"

    def processes(self) -> list[psutil.Process]:
        """The server's processes: with workers, uvicorn's supervisor and its workers."""
        main = psutil.Process(self.process.pid)
        return [main, *main.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time used so far by the running server processes (user + system)."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in self.processes() if p.is_running())

    def terminate(self) -> None:
        """SIGTERM, as systemd would; `wait` for the exit."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
        self.wait()


def start_server(installation: Installation, log: Path, *, wait: bool = True) -> Server:
    """Start `steward serve` on the installation's port (appending to `log`); with `wait`,
    return once /healthz answers."""
    command = [str(BIN / "steward"), "serve", "--port", str(installation.port)]
    if installation.workers > 1:
        command += ["--workers", str(installation.workers)]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command, env=installation.env, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(process, installation.port)
    if wait and not wait_healthy(server, 60):
        server.stop()
        raise RuntimeError(f"server did not answer within 60 s; see {log}")
    return server


def wait_healthy(server: Server, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False


def tenant_client(server: Server, tenant: str = TENANT) -> httpx.AsyncClient:
    """An API client on the tenant's host; `log_in` it before use."""
    headers = {"Host": server.tenant_host(tenant)}
    return httpx.AsyncClient(base_url=server.url, timeout=60, headers=headers)


async def log_in(client: httpx.AsyncClient) -> None:
    """Give the client the tenant admin's bearer token."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}
    )
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"


class Probe:
    """Read-only looks into the server's database, beside the server: heartbeat history rows
    and how old the oldest `last_seen` of an online device is."""

    def __init__(self, installation: Installation) -> None:
        self.installation = installation

    async def _pg(self, sql: str) -> list[Any]:
        import asyncpg

        # As the superuser: row-level security would hide every row from a role without a
        # tenant context. Read-only statements only.
        connection = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_ADMIN, database=self.installation.pg_name
        )
        try:
            return [row[0] for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    def _sqlite(self, sql: str) -> list[Any]:
        import sqlite3
        from contextlib import closing

        uri = f"file:{self.installation.sqlite_path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
            return [row[0] for row in connection.execute(sql)]

    async def column(self, sql: str) -> list[Any]:
        """The first column of every row."""
        if self.installation.database == "postgres":
            return await self._pg(sql)
        return self._sqlite(sql)

    async def value(self, sql: str) -> Any:
        return (await self.column(sql))[0]

    async def last_metric_id(self) -> int:
        return int(await self.value("SELECT coalesce(max(id), 0) FROM device_metrics") or 0)

    async def metrics_since(self, after_id: int) -> int:
        """History rows written after row `after_id` (the primary key index: cheap)."""
        sql = f"SELECT count(*) FROM device_metrics WHERE id > {int(after_id)}"
        return int(await self.value(sql) or 0)

    async def last_seen_ages(self) -> list[float]:
        """Seconds since each online simulated agent's `last_seen`, as written, oldest first."""
        values = await self.column(
            "SELECT last_seen FROM device_status WHERE online AND tenant_id = "
            f"(SELECT id FROM tenants WHERE slug = '{TENANT}')"
        )
        now = datetime.now(UTC)
        ages = []
        for value in values:
            seen = datetime.fromisoformat(value) if isinstance(value, str) else value
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=UTC)
            ages.append((now - seen).total_seconds())
        return sorted(ages, reverse=True)
