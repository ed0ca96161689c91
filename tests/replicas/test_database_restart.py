"""PostgreSQL restarting under a running server: requests fail fast with 503 and a JSON error
code while it is down, and everything works again once it is back, without restarting the
server; agents keep working and nothing queued or reported meanwhile is lost.

The machine's shared PostgreSQL serves other test workers, so this module starts a private
instance (Debian's binaries, `initdb` into a temporary directory, a free port) and stops and
starts it for real (`pg_ctl stop -m fast`). Without the binaries the tests are skipped, except
under CI=true where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.server.db.migrate import upgrade
from tests.faults.conftest import RealAgent, command, wait_final, wait_online
from tests.support import (
    IN_CI,
    LiveServer,
    SeededTenant,
    Seeder,
    free_port,
    login,
    make_settings,
    run_async,
    tenant_client,
    wait_for,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")

FAST_S = 6.0  # a request while the database is down answers within this
APP_ROLE = "steward_app"  # an ordinary role, as in production (see tests.support.Databases)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster that this module alone may stop and start."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Not under pytest's tmp dir: when the tests run as root, the server runs as `postgres`
        # and must be able to reach its directory.
        self.root = Path(tempfile.mkdtemp(prefix="steward-pg-"))
        self.data = self.root / "data"
        self.port = free_port()

    def _owner_argv(self, *argv: str) -> list[str]:
        # PostgreSQL refuses to run as root.
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            self._owner_argv(*argv), capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}\n{done.stderr}"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=60"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "postgres.log"), "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def admin(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            connection = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=5
            )
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        run_async(run)

    def database(self, name: str) -> str:
        self.admin(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS")
        self.admin(f'CREATE DATABASE "{name}" OWNER "{APP_ROLE}"')
        return f"postgresql+asyncpg://{APP_ROLE}@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    runuser_ok = os.geteuid() != 0 or shutil.which("runuser") is not None
    if not found or not runuser_ok:
        reason = "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) not installed"
        if IN_CI:
            pytest.fail(f"CI=true requires them: {reason}")
        pytest.skip(reason)
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    instance = PrivatePostgres(_postgres_bin_dir())
    try:
        instance.init()
        instance.start()
        yield instance
    finally:
        instance.destroy()


@pytest.fixture(scope="module")
def server(
    postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    url = postgres.database("steward_restart")
    upgrade(url)
    settings = make_settings(
        url,
        tmp_path_factory.mktemp("data"),
        light_heartbeat_interval_s=1.0,
        status_flush_interval_s=0.2,
        offline_sweep_interval_s=0.5,
        job_sweep_interval_s=0.5,
        leader_check_interval_s=1.0,
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture
def agents() -> Iterator[list[RealAgent]]:
    started: list[RealAgent] = []
    yield started
    for agent in started:
        agent.stop()


def _allow_shell(api: httpx.Client) -> None:
    # `sh -c` is high risk: let it run without an approver here.
    security = api.get("/api/v1/tenant/security").json()
    api.put("/api/v1/tenant/security", json=security | {"approval_for_high_risk": False})


def _submit(api: httpx.Client, device_id: str, shell: str) -> str:
    created = api.post(
        f"/api/v1/devices/{device_id}/commands",
        json={"type": "shell", "payload": {"command": shell}},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def _assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert elapsed < FAST_S, f"answered after {elapsed:.1f} s"
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable", response.text
    assert int(response.headers["Retry-After"]) > 0


def test_postgresql_restart_fails_fast_and_recovers_without_a_server_restart(
    postgres: PrivatePostgres,
    server: LiveServer,
    agents: list[RealAgent],
    tmp_path: Path,
) -> None:
    seeder = Seeder(server.settings)
    tenant: SeededTenant = seeder.tenant()
    marker = tmp_path / "ran.txt"
    online = RealAgent(server.url, tmp_path / "agent-online").enroll(seeder.pin(tenant))
    agents.append(online.start())
    # Enrolled now, started only after the outage: its command waits in the queue meanwhile.
    later = RealAgent(server.url, tmp_path / "agent-later").enroll(seeder.pin(tenant))
    api = login(server, tenant)
    _allow_shell(api)
    wait_online(api, online.device_id)
    queued = _submit(api, later.device_id, f"echo queued >> {marker}")
    running = _submit(api, online.device_id, f"sh -c 'sleep 3; echo running >> {marker}'")
    wait_for(lambda: command(api, running)["status"] == "running", timeout=10)

    postgres.stop()
    down_at = time.monotonic()
    _assert_unavailable(*_timed(lambda: api.get("/api/v1/devices")))
    _assert_unavailable(*_timed(lambda: api.get(f"/api/v1/commands/{running}")))
    with tenant_client(server, tenant.slug) as anonymous:
        signing_in = {"email": tenant.admin_email, "password": tenant.password}
        _assert_unavailable(*_timed(lambda: anonymous.post("/api/v1/auth/login", json=signing_in)))
    # A host the server has not cached yet needs the database just to find its tenant.
    with tenant_client(server, "never-seen-before") as stranger:
        _assert_unavailable(*_timed(lambda: stranger.get("/api/v1/devices")))
    health, elapsed = _timed(lambda: httpx.get(f"{server.url}/healthz", timeout=30))
    assert health.status_code == 503 and elapsed < FAST_S, (health.text, elapsed)
    assert health.json()["database"] == "down"
    # The command ends while the database is down: the agent reports into the void.
    wait_for(lambda: marker.exists() and "running" in marker.read_text(), timeout=10)
    time.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))

    postgres.start()
    wait_for(lambda: httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200, timeout=20)
    wait_for(lambda: api.get("/api/v1/devices").status_code == 200, timeout=10)
    done = wait_final(api, running, timeout=30)
    assert done["status"] == "succeeded", done
    finals = [t["status"] for t in done["transitions"] if t["status"] == "succeeded"]
    assert finals == ["succeeded"]

    # The agent keeps working, and the command queued before the outage reaches its device.
    wait_online(api, online.device_id)
    after = wait_final(api, _submit(api, online.device_id, f"echo after >> {marker}"))
    assert after["status"] == "succeeded", after
    agents.append(later.start())
    assert wait_final(api, queued, timeout=30)["status"] == "succeeded"
    assert sorted(marker.read_text().split()) == ["after", "queued", "running"]
    api.close()
