"""Cluster-wide periodic work runs on one replica: the holder of a PostgreSQL advisory lock.

Real PostgreSQL sessions, real servers and a real process killed the hard way; a lock is lost
the way a dying replica loses it (its session ends)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from steward.server.db.engine import create_engine
from steward.server.leader import LOCK_KEY, Leadership
from steward.server.settings import Settings
from tests.jobs.helpers import fleet, in_database
from tests.support import Databases, LiveServer, Seeder, login, wait_for

CHECK_S = 0.3
FAST = {
    "light_heartbeat_interval_s": 1.0,
    "offline_sweep_interval_s": 0.3,
    "status_flush_interval_s": 0.2,
    "job_sweep_interval_s": 0.3,
    "leader_check_interval_s": CHECK_S,
}
ECHO = {"type": "shell", "payload": {"command": "echo hi"}}
LIGHT = {
    "type": "heartbeat.light",
    "cpu_percent": 12.5,
    "memory_percent": 40.0,
    "ip_addresses": ["10.0.0.5"],
    "uptime_s": 100,
    "logged_in_users": [],
}

# A replica reduced to its leadership: reports what it became, then lives until killed.
REPLICA = """
import asyncio, sys
from steward.server.leader import Leadership

async def main() -> None:
    leadership = Leadership(sys.argv[1], float(sys.argv[2]))
    await leadership.start()
    print("leader" if leadership.is_leader else "follower", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
def pg_url(databases: Databases) -> str:
    return databases.create("postgresql")  # skips where PostgreSQL is not available


async def _eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until `predicate()` held, letting this loop's leadership checks run meanwhile."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _terminate_lock_holder(url: str) -> int:
    """End the session holding the lock from a third connection (as the database would when a
    replica's connection dies). Returns how many sessions were ended."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            ended = await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                    " AND database = (SELECT oid FROM pg_database"
                    "                 WHERE datname = current_database())"
                    " AND classid = :high AND objid = :low"
                ),
                {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF},
            )
            return len(ended.all())
    finally:
        await engine.dispose()


def _settings(url: str, data_dir: Path, secret: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=url, secret_key=secret, **FAST)  # type: ignore[arg-type]


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").json()
    return body


def _soon(seconds: float = 1.0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


async def test_sqlite_is_one_process_and_always_leads(tmp_path: Path) -> None:
    leadership = Leadership(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}", CHECK_S)
    assert leadership.is_leader
    await leadership.start()
    assert leadership.is_leader
    await leadership.stop()
    assert leadership.is_leader


async def test_exactly_one_leads_and_the_other_takes_over_after_a_clean_stop(pg_url: str) -> None:
    first, second = Leadership(pg_url, CHECK_S), Leadership(pg_url, CHECK_S)
    await first.start()
    await second.start()
    try:
        assert first.is_leader and not second.is_leader
        await asyncio.sleep(CHECK_S * 5)  # several rounds of checks: a held lock stays held
        assert first.is_leader and not second.is_leader
        await first.stop()
        assert not first.is_leader
        assert await _eventually(lambda: second.is_leader) < 15
        await first.start()  # back as a follower: the lock is taken
        await asyncio.sleep(CHECK_S * 3)
        assert second.is_leader and not first.is_leader
    finally:
        await first.stop()
        await second.stop()


async def test_a_leader_whose_session_dies_stops_leading_and_one_leads_again(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="steward.server.leader")
    first, second = Leadership(pg_url, CHECK_S), Leadership(pg_url, CHECK_S)
    await first.start()
    await second.start()
    try:
        assert first.is_leader and not second.is_leader
        assert await _terminate_lock_holder(pg_url) == 1
        await _eventually(lambda: "lost leadership" in caplog.text)
        # Either may win the free lock; exactly one holds it, and keeps it.
        await _eventually(lambda: first.is_leader != second.is_leader)
        leader = first if first.is_leader else second
        await asyncio.sleep(CHECK_S * 4)
        assert leader.is_leader and [first.is_leader, second.is_leader].count(True) == 1
        assert caplog.text.count("became leader") == 2
    finally:
        await first.stop()
        await second.stop()


async def test_when_the_leading_process_is_killed_another_takes_over(pg_url: str) -> None:
    survivor = Leadership(pg_url, CHECK_S)
    command = [sys.executable, "-c", REPLICA, pg_url, str(CHECK_S)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as replica:
        try:
            assert replica.stdout is not None
            assert replica.stdout.readline().strip() == "leader"
            await survivor.start()
            assert not survivor.is_leader
            replica.send_signal(signal.SIGKILL)  # no clean release: PostgreSQL ends its session
            replica.wait(10)
            assert await _eventually(lambda: survivor.is_leader) < 15
        finally:
            if replica.poll() is None:
                replica.kill()
            await survivor.stop()


async def test_a_follower_flushes_its_own_state_but_leaves_shared_work_to_the_leader(
    pg_url: str, tmp_path: Path
) -> None:
    other_replica = Leadership(pg_url, CHECK_S)  # leads, and runs none of the periodic work
    await other_replica.start()
    server = LiveServer(_settings(pg_url, tmp_path, "leader-" + uuid.uuid4().hex)).start()
    try:
        runtime = server.app.state.runtime
        assert other_replica.is_leader and not runtime.leadership.is_leader
        seeder = Seeder(server.settings)
        tenant = seeder.tenant()
        (agent,) = fleet(server, seeder, tenant, 1)
        with login(server, tenant) as api:
            device = f"/api/v1/devices/{agent.device_id}"
            agent.poll([LIGHT])  # the follower's own status flush still runs
            wait_for(lambda: api.get(device).json()["online"], timeout=5)
            made = api.post(
                "/api/v1/jobs", json=ECHO | {"target": {"all": True}, "run_at": _soon()}
            )
            job = made.json()
            assert job["status"] == "scheduled"
            # Past the run time and three missed heartbeats: nobody here sweeps.
            await asyncio.sleep(4.0)
            assert _job(api, job["id"])["status"] == "scheduled"
            assert api.get(device).json()["online"] is True
            assert agent.dispatches() == []
            await other_replica.stop()  # the leader goes: this server takes over
            assert await _eventually(lambda: runtime.leadership.is_leader) < 15
            wait_for(lambda: _job(api, job["id"])["status"] == "running", timeout=10)
            wait_for(lambda: api.get(device).json()["online"] is False, timeout=10)
        assert len(agent.dispatches()) == 1
    finally:
        server.stop()
        await other_replica.stop()


async def test_two_servers_one_leader_and_work_goes_on_when_it_stops(
    pg_url: str, tmp_path: Path
) -> None:
    secret = "replicas-" + uuid.uuid4().hex
    servers = [LiveServer(_settings(pg_url, tmp_path / n, secret)).start() for n in "ab"]

    def leads() -> list[bool]:
        return [s.app.state.runtime.leadership.is_leader for s in servers]

    try:
        # Usually the first to start; on a loaded machine its first check may time out and the
        # other take the lock: which one leads does not matter, that exactly one does.
        await _eventually(lambda: any(leads()))
        assert sorted(leads()) == [False, True]
        first, second = servers if leads()[0] else servers[::-1]  # first: the leader
        seeder = Seeder(first.settings)
        tenant = seeder.tenant()
        (agent,) = fleet(second, seeder, tenant, 1)
        spec = ECHO | {"target": {"all": True}}
        with login(second, tenant) as api:
            made = api.post(
                "/api/v1/schedules", json={"name": "n", "cron": "0 22 * * *", "job": spec}
            )
            assert made.status_code == 201, made.text
            schedule = made.json()["id"]
            in_database(second, "UPDATE schedules SET next_run_at = '2000-01-01 00:00:00'")
            wait_for(lambda: api.get(f"/api/v1/schedules/{schedule}").json()["last_job_id"])
            await asyncio.sleep(1.0)  # more sweeps on both servers: the schedule fired once
            fired = [j for j in api.get("/api/v1/jobs").json() if j["schedule_id"] == schedule]
            assert len(fired) == 1
            assert agent.run_all() == 1
            first.stop()
            assert await _eventually(lambda: second.app.state.runtime.leadership.is_leader) < 15
            job = api.post("/api/v1/jobs", json=spec | {"run_at": _soon()}).json()
            assert job["status"] == "scheduled"
            wait_for(lambda: _job(api, job["id"])["status"] == "running", timeout=10)
        assert agent.run_all() == 1
    finally:
        for server in servers:
            server.stop()
