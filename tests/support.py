"""Shared test support: fresh databases on SQLite and PostgreSQL, a real server, seed data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from steward.server.settings import Settings

PG_HOST = os.environ.get("STEWARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STEWARD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("STEWARD_TEST_PG_USER", "postgres")
BACKENDS = ["sqlite", "postgresql"]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def run_async(work: Any) -> Any:
    """Run `work()` (a coroutine function) to completion on a fresh loop in its own thread, so
    that it works whether or not this thread already runs a loop (Playwright's sync API does)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(work())
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=5
        )
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    run_async(run)


_pg_state: dict[str, Any] = {}


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    if "reason" not in _pg_state:
        try:
            _pg_admin("SELECT 1")
            _pg_state["reason"] = None
        except Exception as exc:  # any failure means "not usable here"
            _pg_state["reason"] = f"PostgreSQL at {PG_HOST}:{PG_PORT} unavailable: {exc!r}"
    return _pg_state["reason"]


def require_backend(backend: str) -> None:
    if backend == "postgresql" and (reason := postgres_available()):
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(reason)


class Databases:
    """Creates migrated databases and drops them at the end of the run."""

    def __init__(self, tmp_root: Path) -> None:
        self.tmp_root = tmp_root
        self.pg_names: list[str] = []
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")

    def create(self, backend: str) -> str:
        from steward.server.db.migrate import upgrade

        require_backend(backend)
        name = f"steward_test_{self.worker}_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp_root / (name + '.db')}"
        else:
            self._ensure_app_role()
            _pg_admin(f'CREATE DATABASE "{name}" OWNER "{self.APP_ROLE}"')
            self.pg_names.append(name)
            url = self._app_url(name)
        upgrade(url)
        return url

    def copy_of(self, template_url: str) -> str:
        """A new PostgreSQL database cloned from another (which must have no connections)."""
        template = template_url.rsplit("/", 1)[1]
        name = f"steward_test_{self.worker}_{uuid.uuid4().hex[:10]}"
        self._ensure_app_role()
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER "{self.APP_ROLE}"')
        self.pg_names.append(name)
        return self._app_url(name)

    # The app reaches its PostgreSQL databases as their owner, an ordinary role, as in
    # production: a superuser (or BYPASSRLS) would pass through the row-level security policies.
    APP_ROLE = "steward_app"
    _app_role_ready = False

    @classmethod
    def _ensure_app_role(cls) -> None:
        if cls._app_role_ready:
            return
        # Parallel workers race to create the role: the loser sees duplicate_object, or
        # unique_violation when both passed the catalog check at the same time.
        _pg_admin(
            "DO $$ BEGIN "
            f"CREATE ROLE {cls.APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; "
            "END $$"
        )
        cls._app_role_ready = True

    def _app_url(self, name: str) -> str:
        return f"postgresql+asyncpg://{self.APP_ROLE}@{PG_HOST}:{PG_PORT}/{name}"

    def drop_all(self) -> None:
        for name in self.pg_names:
            # a database that cannot be dropped is left behind; the next run's names differ
            with contextlib.suppress(Exception):
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


REDIS_URL = os.environ.get("STEWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> str:
    """The test Redis URL; skips the test without Redis, or fails it under CI=true."""
    import redis

    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} unavailable: {exc!r}"
        if IN_CI:
            pytest.fail(f"CI=true requires Redis: {reason}")
        pytest.skip(reason)
    return REDIS_URL


def closed_port_redis_url() -> str:
    """A Redis URL where nothing listens (Redis "down")."""
    return f"redis://127.0.0.1:{free_port()}/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a server in this test process. Its collector policy stays off: freezing
    is process-wide, and the test process holds many servers' worth of objects (it is tested
    on its own in tests/server/test_collector.py; `steward serve` processes keep it on)."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key="test-secret-" + uuid.uuid4().hex,
        **({"gc_freeze_interval_s": 0.0} | overrides),
    )


class LiveServer:
    """The real ASGI app on uvicorn, on a free port, in a background thread."""

    def __init__(self, settings: Settings) -> None:
        from steward.cli import uvicorn_options
        from steward.server.app import create_app

        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = uvicorn_options("127.0.0.1", self.port) | {"log_level": "warning"}
        self.app = create_app(settings)
        self._server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/agent/v1/ws"


@dataclass
class SeededTenant:
    slug: str
    tenant_id: uuid.UUID
    admin_email: str
    password: str


class Seeder:
    """Builds data through the real services, in its own event loop and engine."""

    PASSWORD = "correct-horse-battery"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _run(self, work: Any) -> Any:
        from steward.server.db.engine import standalone_session

        async def main() -> Any:
            async with standalone_session(self.settings.effective_database_url) as session:
                result = await work(session)
                await session.commit()
                return result

        return run_async(main)

    def tenant(self, slug: str | None = None, **kwargs: Any) -> SeededTenant:
        from steward.server.accounts.models import Role
        from steward.server.accounts.service import create_user
        from steward.server.tenancy.service import create_tenant

        slug = slug or f"t{uuid.uuid4().hex[:8]}"

        async def work(session: Any) -> SeededTenant:
            tenant = await create_tenant(session, slug, slug.upper(), **kwargs)
            email = f"admin@{slug}.example"
            await create_user(session, tenant, email, self.PASSWORD, Role.ADMIN)
            return SeededTenant(slug, tenant.id, email, self.PASSWORD)

        return self._run(work)

    def user(self, tenant: SeededTenant, role: str) -> str:
        from steward.server.accounts.models import Role
        from steward.server.accounts.service import create_user
        from steward.server.tenancy.service import get_tenant

        email = f"{role.lower()}-{uuid.uuid4().hex[:6]}@{tenant.slug}.example"

        async def work(session: Any) -> None:
            found = await get_tenant(session, tenant.tenant_id)
            await create_user(session, found, email, self.PASSWORD, Role(role))

        self._run(work)
        return email

    def pin(self, tenant: SeededTenant, group: str | None = None, ttl_s: int = 600) -> str:
        from steward.server.devices.enrollment import create_pin
        from steward.server.tenancy.service import get_or_create_group, get_tenant

        async def work(session: Any) -> str:
            found = await get_tenant(session, tenant.tenant_id)
            if group:
                await get_or_create_group(session, found.id, group)
            pin, _row, _group = await create_pin(
                session,
                self.settings.effective_secret_key,
                found,
                group_name=group,
                ttl_s=ttl_s,
                created_by="test",
            )
            return pin

        return self._run(work)


def host_header(server: LiveServer, slug: str | None) -> dict[str, str]:
    """The `Host` of a tenant (`<slug>.localhost:<port>`), or of the platform (None)."""
    name = f"{slug}.localhost" if slug else "localhost"
    return {"Host": f"{name}:{server.port}"}


def tenant_client(server: LiveServer, slug: str | None, **headers: str) -> httpx.Client:
    """A client that speaks to the server as `<slug>.localhost` (the platform host for None)."""
    return httpx.Client(
        base_url=server.url, timeout=10, headers=host_header(server, slug) | headers
    )


def login(server: LiveServer, tenant: SeededTenant, email: str | None = None) -> httpx.Client:
    """An API client with a bearer token, on the tenant's host."""
    with tenant_client(server, tenant.slug) as anonymous:
        response = anonymous.post(
            "/api/v1/auth/login",
            json={"email": email or tenant.admin_email, "password": tenant.password},
        )
    response.raise_for_status()
    token = response.json()["access_token"]
    return tenant_client(server, tenant.slug, Authorization=f"Bearer {token}")


def enroll(
    server: LiveServer, pin: str, machine_id: str | None = None, hostname: str = "host-1"
) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}/api/agent/v1/enroll",
        json={
            "pin": pin,
            "machine_id": machine_id or uuid.uuid4().hex,
            "hostname": hostname,
            "agent_version": "test",
            "os_name": "Linux",
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def agent_auth(credentials: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Agent {credentials['agent_id']}:{credentials['agent_secret']}"}


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


async def wait_for_async(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> Any:
    """`wait_for` inside an event loop: sleeps without stopping the loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def start_agent_process(
    server_url: str, pin: str, base: Path, machine_id: str
) -> subprocess.Popen[bytes]:
    """Enroll a real `steward-agent` by PIN (state in `base/state`) and start it, its output in
    `base/agent.log`."""
    agent = str(Path(sys.executable).parent / "steward-agent")
    env = os.environ | {"STEWARD_AGENT_MACHINE_ID": machine_id}
    state = base / "state"
    enrolled = subprocess.run(
        [agent, "enroll", "--server", server_url, "--pin", pin, "--state-dir", str(state)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    with open(base / "agent.log", "wb") as log:
        return subprocess.Popen(
            [agent, "run", "--state-dir", str(state)], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
