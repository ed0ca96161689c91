"""The server stops halfway through a job and a new one starts on the same database: agents
reconnect, the job finishes, every device ran the command exactly once, nothing is lost."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.server.commands.models import Command
from tests.conftest import _server_overrides
from tests.faults.conftest import (
    LONG_AGO,
    LedgerSim,
    RealAgent,
    RestartableServer,
    change_commands,
    sim_fleet,
)
from tests.support import Databases, Seeder, login, make_settings, wait_for

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")
SIMULATED = 24
CONCURRENCY = 5


@pytest.fixture
def restartable(
    databases: Databases, backend: str, tmp_path: Path
) -> Iterator[list[RestartableServer]]:
    """The servers of one test, the current last; the current one is stopped at the end."""
    url = databases.create(backend)
    settings = make_settings(url, tmp_path / "data", **_server_overrides())
    servers = [RestartableServer(settings)]
    servers[0].start()
    yield servers
    servers[-1].stop()


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/jobs/{job_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


IN_FLIGHT = ("queued", "sent", "running")


def _take(sims: list[LedgerSim], job: dict[str, Any]) -> int:
    """Sims with a command in flight poll for it ("running" it if new); how many new."""
    by_device = {sim.device_id: sim for sim in sims}
    taken = 0
    for row in job["commands"]:
        sim = by_device.get(row["device_id"])
        if sim is not None and row["status"] in IN_FLIGHT:
            taken += len(sim.take())
    return taken


def _in_flight_on(api: httpx.Client, job_id: str, device_id: str) -> bool:
    rows = _job(api, job_id)["commands"]
    return any(r["device_id"] == device_id and r["status"] in IN_FLIGHT for r in rows)


def _round(api: httpx.Client, sims: list[LedgerSim], job_id: str) -> dict[str, Any]:
    """Sims report what they took last round, then take what is queued for them now (so
    some results are always outstanding, as with real agents). The job as it was seen."""
    for sim in sims:
        sim.report()
    job = _job(api, job_id)
    assert sum(job["counts"].get(s, 0) for s in IN_FLIGHT) <= CONCURRENCY, job["counts"]
    _take(sims, job)
    return job


def test_a_job_survives_a_server_restart(
    restartable: list[RestartableServer], real_agents: list[RealAgent], tmp_path: Path
) -> None:
    first = restartable[0]
    seeder = Seeder(first.settings)
    tenant = seeder.tenant()
    sims = sim_fleet(first, seeder, tenant, SIMULATED)
    # The real agent is enrolled now and started halfway through, so that the server stops
    # while its command runs (it may have been released already: it waits in `queued`).
    real = RealAgent(first.url, tmp_path / "agent")
    real.enroll(seeder.pin(tenant))
    real_agents.append(real)
    marker = tmp_path / "marker.txt"
    total = SIMULATED + 1
    with login(first, tenant) as api:
        created = api.post(
            "/api/v1/jobs",
            json={
                "type": "shell",
                "payload": {"command": f"echo ran >> {marker}; sleep 3"},
                "target": {"all": True},
                "max_concurrency": str(CONCURRENCY),
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["total"] == total
        job_id = created.json()["id"]
        real_command = next(
            c["id"] for c in _job(api, job_id)["commands"] if c["device_id"] == real.device_id
        )
        while _round(api, sims, job_id)["counts"].get("succeeded", 0) < total // 2:
            pass
        # Halfway: the real device is next in line if it has not had its turn yet.
        change_commands(
            first.settings,
            Command.id == uuid.UUID(real_command),
            Command.status == "held",
            created_at=LONG_AGO,
        )
        real.start()
        # Rounds until the real device's turn comes (first in line: at the first free slot),
        # then no more rounds while its agent starts (slowly on a busy machine), so that the
        # simulated devices keep commands in flight for the restart.
        wait_for(lambda: _round(api, sims, job_id) and _in_flight_on(api, job_id, real.device_id))
        wait_for(marker.exists, timeout=30)
        wait_for(lambda: _take(sims, _job(api, job_id)) or _outstanding(sims), timeout=10)
        outstanding = _outstanding(sims)
        assert _job(api, job_id)["finished_at"] is None
    restarted = first.restarted()
    restartable.append(restarted)
    # The new server's poll answers to the simulated agents were lost: they are sent again.
    resend = change_commands(
        restarted.settings,
        Command.job_id == uuid.UUID(job_id),
        Command.status.in_(["sent", "running"]),
        Command.device_id != uuid.UUID(real.device_id),
        sent_at=LONG_AGO,
    )
    assert resend >= len(outstanding)

    with login(restarted, tenant) as api:
        for sim in sims:
            sim.take()  # every one of them was already run: answered, never run again
        assert sorted(c for sim in sims for c in sim.redispatched) == sorted(outstanding)
        for _ in range(200):
            job = _round(api, sims, job_id)
            if job["finished_at"]:
                break
        else:
            raise AssertionError(f"the job did not finish: {job['counts']}")
        assert job["status"] == "succeeded", job
        assert job["counts"] == {"succeeded": total}
        done = api.get(f"/api/v1/commands/{real_command}").json()
        assert done["status"] == "succeeded" and done["exit_code"] == 0, done
        states = [t["status"] for t in done["transitions"]]
        assert states.count("succeeded") == 1, states
        again = [t for t in done["transitions"] if t["note"].startswith("sent again")]
        assert states.count("sent") == 1 and len(again) == 1, states  # to the reconnected agent
    assert [len(sim.ran) for sim in sims] == [1] * SIMULATED  # each ran it once
    assert marker.read_text() == "ran\n"  # and the real agent exactly once


def _outstanding(sims: list[LedgerSim]) -> list[str]:
    return [command_id for sim in sims for command_id in sim.unreported]
