"""Rate control and the error threshold on a job to 200 simulated devices: never more than
10 % in flight, dispatch stops at the fifth failure, the rest is cancelled, totals add up."""

from __future__ import annotations

from typing import Any

import httpx

from tests.faults.conftest import LedgerSim, sim_fleet
from tests.support import LiveServer, Seeder, login

DEVICES = 200
LIMIT = 20  # 10 % of 200
THRESHOLD = 5
SUCCEED_FIRST = LIMIT  # results before the devices start failing
IN_FLIGHT = ("queued", "sent", "running")


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/jobs/{job_id}", params={"limit": 500})  # all 200 rows
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _in_flight(job: dict[str, Any]) -> int:
    return sum(job["counts"].get(s, 0) for s in IN_FLIGHT)


def test_concurrency_and_error_threshold_on_200_devices(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    sims = sim_fleet(server, seeder, tenant, DEVICES)
    by_device = {sim.device_id: sim for sim in sims}
    with login(server, tenant) as api:
        created = api.post(
            "/api/v1/jobs",
            json={
                "type": "shell",
                "payload": {"command": "echo hi"},
                "target": {"all": True},
                "max_concurrency": "10%",
                "error_threshold": str(THRESHOLD),
            },
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.json()["total"] == DEVICES
        observations: list[int] = []
        done = 0
        holding: list[LedgerSim] = []
        for _ in range(100):
            job = _job(api, job_id)
            observations.append(_in_flight(job))
            if job["finished_at"]:
                break
            # Devices holding a command report it (the first SUCCEED_FIRST succeed) ...
            for sim in holding:
                done += sim.report()
            holding = []
            # ... and those with one in flight take it, and are observed holding it.
            job = _job(api, job_id)
            for row in job["commands"]:
                if row["status"] in IN_FLIGHT:
                    sim = by_device[row["device_id"]]
                    sim.take("succeeded" if done < SUCCEED_FIRST else "failed")
                    if sim.unreported:
                        holding.append(sim)
            observations.append(_in_flight(_job(api, job_id)))
        else:
            raise AssertionError(f"the job did not finish: {job['counts']}")

    assert max(observations) <= LIMIT, observations
    assert LIMIT in observations  # the limit was reached, not merely respected
    counts = job["counts"]
    assert job["status"] == "stopped", job
    assert job["stop_reason"].startswith("stopped after"), job["stop_reason"]
    assert job["stop_reason"].endswith(f"(threshold {THRESHOLD})"), job["stop_reason"]
    assert sum(counts.values()) == DEVICES, counts
    assert set(counts) <= {"succeeded", "failed", "cancelled"}, counts
    assert counts["failed"] >= THRESHOLD
    # Only what was in flight when the fifth failure came in could still fail.
    assert counts["failed"] < THRESHOLD + LIMIT, counts
    ran = [command_id for sim in sims for command_id in sim.ran]
    assert len(ran) == len(set(ran)) == counts["succeeded"] + counts["failed"]
    assert all(len(sim.ran) <= 1 for sim in sims)
    cancelled = {c["id"] for c in job["commands"] if c["status"] == "cancelled"}
    assert cancelled and not cancelled & set(ran)  # no cancelled command reached a device
    # Their devices get nothing, now or later: cancelled commands are never dispatched.
    cancelled_devices = {c["device_id"] for c in job["commands"] if c["id"] in cancelled}
    assert sum(len(by_device[d].take()) for d in cancelled_devices) == 0
