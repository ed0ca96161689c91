"""Jobs through the real API and simulated agents on the real protocol: rate control, error
threshold, targets, approvals by two people, cancel, expiry, schedules, bad input."""

from __future__ import annotations

from typing import Any

import httpx

from tests.jobs.helpers import fleet, in_database
from tests.support import LiveServer, Seeder, login, wait_for

ECHO = {"type": "shell", "payload": {"command": "echo hi"}}


def _job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/jobs/{job_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _in_flight(job: dict[str, Any]) -> int:
    return sum(job["counts"].get(s, 0) for s in ("queued", "sent", "running"))


def test_rate_control_keeps_at_most_n_in_flight_and_finishes(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    agents = fleet(server, seeder, tenant, 6)
    with login(server, tenant) as api:
        created = api.post(
            "/api/v1/jobs", json=ECHO | {"target": {"all": True}, "max_concurrency": "2"}
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        assert created.json()["total"] == 6
        job = _job(api, job_id)
        assert job["counts"] == {"queued": 2, "held": 4}
        peak = 0
        for _ in range(20):
            for agent in agents:
                agent.run_all()
            job = _job(api, job_id)
            peak = max(peak, _in_flight(job))
            assert _in_flight(job) <= 2
            if job["status"] == "succeeded":
                break
        assert job["status"] == "succeeded", job
        assert job["counts"] == {"succeeded": 6}
        assert peak <= 2
        assert sorted(len(a.ran) for a in agents) == [1] * 6  # each device ran it once
        # every command's history: held -> queued -> sent -> running -> succeeded
        first = job["commands"][0]["id"]
        states = [t["status"] for t in api.get(f"/api/v1/commands/{first}").json()["transitions"]]
        assert states == ["held", "queued", "sent", "running", "succeeded"]


def test_a_percentage_concurrency_rounds_up(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    fleet(server, seeder, tenant, 3)
    with login(server, tenant) as api:
        job = api.post(
            "/api/v1/jobs", json=ECHO | {"target": {"all": True}, "max_concurrency": "50%"}
        ).json()
        assert _job(api, job["id"])["counts"] == {"queued": 2, "held": 1}


def test_the_error_threshold_stops_dispatching(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    agents = fleet(server, seeder, tenant, 6)
    with login(server, tenant) as api:
        job_id = api.post(
            "/api/v1/jobs",
            json=ECHO | {"target": {"all": True}, "max_concurrency": "1", "error_threshold": "2"},
        ).json()["id"]
        for _ in range(10):
            for agent in agents:
                agent.run_all(status="failed", exit_code=3)
            job = _job(api, job_id)
            if job["status"] == "stopped" and job["finished_at"]:
                break
        assert job["status"] == "stopped", job
        assert job["counts"] == {"failed": 2, "cancelled": 4}
        assert "2 failures" in job["stop_reason"]
        assert sum(len(a.ran) for a in agents) == 2  # nothing dispatched after the threshold


def test_targets_by_tag_and_group_and_preview(server: LiveServer, seeder: Seeder) -> None:
    tenant, other = seeder.tenant(), seeder.tenant()
    lab = fleet(server, seeder, tenant, 2, group="lab")
    office = fleet(server, seeder, tenant, 1, group="office")
    foreign = fleet(server, seeder, other, 1)
    with login(server, tenant) as api:
        put = api.put(f"/api/v1/devices/{office[0].device_id}/tags", json={"tags": ["Front-Desk"]})
        assert put.json() == {"tags": ["front-desk"]}
        bad = api.put(f"/api/v1/devices/{office[0].device_id}/tags", json={"tags": ["a;b"]})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_tag"
        assert api.get("/api/v1/tags").json() == ["front-desk"]
        preview = api.post("/api/v1/targets/preview", json={"tags": ["front-desk"]}).json()
        assert preview["count"] == 1 and preview["sample"][0]["hostname"] == "sim-000"
        assert api.post("/api/v1/targets/preview", json={"groups": ["lab"]}).json()["count"] == 2
        assert api.post("/api/v1/targets/preview", json={"all": True}).json()["count"] == 3
        # another tenant's device id matches nothing here
        theirs = {"devices": [foreign[0].device_id]}
        assert api.post("/api/v1/targets/preview", json=theirs).json()["count"] == 0
        refused = api.post("/api/v1/jobs", json=ECHO | {"target": theirs})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_devices"
        assert api.post("/api/v1/targets/preview", json={}).status_code == 422
        job = api.post("/api/v1/jobs", json=ECHO | {"target": {"groups": ["lab"]}}).json()
        hosts = {c["device_id"] for c in _job(api, job["id"])["commands"]}
        assert hosts == {agent.device_id for agent in lab}
    assert foreign[0].dispatches() == []
    viewer = seeder.user(tenant, "VIEWER")
    with login(server, tenant, viewer) as api:
        assert api.post("/api/v1/targets/preview", json={"all": True}).status_code == 403
        assert api.post("/api/v1/jobs", json=ECHO | {"target": {"all": True}}).status_code == 403
        tags = api.put(f"/api/v1/devices/{lab[0].device_id}/tags", json={"tags": ["x"]})
        assert tags.status_code == 403


def test_bad_job_input_is_refused_with_a_clear_error(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    fleet(server, seeder, tenant, 1)
    everyone = {"target": {"all": True}}
    cases = [
        ECHO | everyone | {"max_concurrency": "0"},
        ECHO | everyone | {"max_concurrency": "150%"},
        ECHO | everyone | {"error_threshold": "a few"},
        {"type": "package.install", "payload": {"names": ["vim; rm -rf /"]}} | everyone,
        {"type": "package.install", "payload": {"names": ["-oAPT::x"]}} | everyone,
        {"type": "service.restart", "payload": {"name": "$(reboot)"}} | everyone,
        {"type": "process.kill", "payload": {}} | everyone,
        {"type": "shell", "payload": {"command": "x", "extra": 1}} | everyone,
        {"type": "no.such", "payload": {}} | everyone,
        ECHO | {"target": {"all": True, "bogus": 1}},
    ]
    with login(server, tenant) as api:
        for body in cases:
            response = api.post("/api/v1/jobs", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["code"], response.text
        assert api.get("/api/v1/jobs").json() == []  # nothing was created


def test_high_risk_jobs_need_two_distinct_approvers(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    agents = fleet(server, seeder, tenant, 2)
    author, second = seeder.user(tenant, "ENGINEER"), seeder.user(tenant, "ENGINEER")
    with login(server, tenant) as admin:
        security = admin.get("/api/v1/tenant/security").json()
        admin.put("/api/v1/tenant/security", json=security | {"two_approvers_for_high_risk": True})
    reboot = {"type": "power.reboot", "payload": {"delay_s": 60, "message": "bye"}}
    with login(server, tenant, author) as api:
        created = api.post("/api/v1/jobs", json=reboot | {"target": {"all": True}}).json()
        assert created["status"] == "pending_approval" and created["approvals_needed"] == 2
        own = api.post(f"/api/v1/jobs/{created['id']}/approve", json={"comment": "mine"})
        assert own.status_code == 403 and own.json()["error"]["code"] == "own_command"
    assert [a.dispatches() for a in agents] == [[], []]
    with login(server, tenant) as admin:
        assert [j["id"] for j in admin.get("/api/v1/approvals/jobs").json()] == [created["id"]]
        first = admin.post(f"/api/v1/jobs/{created['id']}/approve", json={"comment": "ok at 22h"})
        assert first.json()["status"] == "pending_approval"
        again = admin.post(f"/api/v1/jobs/{created['id']}/approve")
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    with login(server, tenant, second) as api:
        done = api.post(f"/api/v1/jobs/{created['id']}/approve", json={"comment": "agreed"})
        assert done.json()["status"] == "running", done.text
        job = _job(api, created["id"])
        assert [(a["approver"], a["comment"]) for a in job["approvals"]] == [
            (tenant.admin_email, "ok at 22h"),
            (second, "agreed"),
        ]
    assert all(len(a.dispatches()) == 1 for a in agents)


def test_a_denied_job_never_reaches_an_agent(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    agents = fleet(server, seeder, tenant, 1)
    author = seeder.user(tenant, "ENGINEER")
    with login(server, tenant, author) as api:
        job = api.post(
            "/api/v1/jobs",
            json={"type": "shell", "payload": {"command": "rm -rf /srv"}, "target": {"all": True}},
        ).json()
    with login(server, tenant) as admin:
        denied = admin.post(f"/api/v1/jobs/{job['id']}/deny", json={"comment": "not today"})
        assert denied.json()["status"] == "denied"
        assert _job(admin, job["id"])["counts"] == {"denied": 1}
    assert agents[0].dispatches() == []


def test_cancel_withdraws_queued_and_kills_running(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    (agent,) = fleet(server, seeder, tenant, 1)
    with login(server, tenant) as api:
        queued = api.post(f"/api/v1/devices/{agent.device_id}/commands", json=ECHO).json()["id"]
        cancelled = api.post(f"/api/v1/commands/{queued}/cancel")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        assert agent.dispatches() == []
        again = api.post(f"/api/v1/commands/{queued}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_finished"
        running = api.post(f"/api/v1/devices/{agent.device_id}/commands", json=ECHO).json()["id"]
        assert len(agent.dispatches()) == 1
        agent.poll([{"type": "command.ack", "command_id": running}])
        asked = api.post(f"/api/v1/commands/{running}/cancel").json()
        assert asked["status"] == "running" and asked["cancel_requested_at"]
        agent.poll()
        assert running in agent.cancels  # the next poll carries the cancel
        agent.poll([{"type": "command.result", "command_id": running, "status": "cancelled"}])
        detail = api.get(f"/api/v1/commands/{running}").json()
        assert detail["status"] == "cancelled"
        assert [t["status"] for t in detail["transitions"]][-1] == "cancelled"
    viewer = seeder.user(tenant, "VIEWER")
    with login(server, tenant, viewer) as api:
        assert api.post(f"/api/v1/commands/{running}/cancel").status_code == 403


def test_cancel_a_job(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    agents = fleet(server, seeder, tenant, 3)
    with login(server, tenant) as api:
        job_id = api.post(
            "/api/v1/jobs", json=ECHO | {"target": {"all": True}, "max_concurrency": "1"}
        ).json()["id"]
        cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel").json()
        assert cancelled["status"] == "cancelled"
        assert _job(api, job_id)["counts"] == {"cancelled": 3}
        assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
    assert all(a.dispatches() == [] for a in agents)


def test_undelivered_commands_expire(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    (agent,) = fleet(server, seeder, tenant, 1)
    with login(server, tenant) as api:
        created = api.post(
            f"/api/v1/devices/{agent.device_id}/commands", json=ECHO | {"expires_in_s": 60}
        ).json()
        in_database(
            server,
            "UPDATE commands SET expires_at = '2000-01-01 00:00:00' WHERE id = :id",
            id=created["id"].replace("-", "")
            if "sqlite" in server.settings.effective_database_url
            else created["id"],
        )
        wait_for(lambda: api.get(f"/api/v1/commands/{created['id']}").json()["status"] == "expired")
        states = [
            t["status"] for t in api.get(f"/api/v1/commands/{created['id']}").json()["transitions"]
        ]
        assert states == ["queued", "expired"]
    assert agent.dispatches() == []


def test_run_once_at_a_time(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    (agent,) = fleet(server, seeder, tenant, 1)
    import datetime as dt

    at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    with login(server, tenant) as api:
        job = api.post("/api/v1/jobs", json=ECHO | {"target": {"all": True}, "run_at": at}).json()
        assert job["status"] == "scheduled"
        assert agent.dispatches() == []
        wait_for(lambda: _job(api, job["id"])["status"] == "running", timeout=10)
    assert len(agent.dispatches()) == 1


def test_schedules_run_as_their_owner(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    (agent,) = fleet(server, seeder, tenant, 1)
    engineer = seeder.user(tenant, "ENGINEER")
    spec = ECHO | {"target": {"all": True}}
    with login(server, tenant, engineer) as api:
        bad = api.post("/api/v1/schedules", json={"name": "x", "cron": "61 * * * *", "job": spec})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cron"
        made = api.post(
            "/api/v1/schedules", json={"name": "nightly", "cron": "0 22 * * *", "job": spec}
        )
        assert made.status_code == 201, made.text
        schedule = made.json()
        assert schedule["next_run_at"] and schedule["created_by"] == engineer
    other = seeder.user(tenant, "ENGINEER")
    with login(server, tenant, other) as api:
        patched = api.patch(f"/api/v1/schedules/{schedule['id']}", json={"enabled": False})
        assert patched.status_code == 403 and patched.json()["error"]["code"] == "not_owner"
    in_database(
        server,
        "UPDATE schedules SET next_run_at = '2000-01-01 00:00:00' WHERE name = 'nightly'",
    )
    with login(server, tenant) as api:
        ran = wait_for(
            lambda: api.get(f"/api/v1/schedules/{schedule['id']}").json()["last_job_id"], timeout=10
        )
        job = _job(api, ran)
        assert job["schedule_id"] == schedule["id"] and job["created_by"] == engineer
        assert api.get(f"/api/v1/schedules/{schedule['id']}").json()["next_run_at"] > "2001"
    assert len(agent.dispatches()) == 1


def test_command_history_filters(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    first, second = fleet(server, seeder, tenant, 2)
    with login(server, tenant) as api:
        api.post(f"/api/v1/devices/{first.device_id}/commands", json=ECHO)
        api.post(
            f"/api/v1/devices/{second.device_id}/commands",
            json={"type": "service.status", "payload": {"name": "cron"}},
        )
        everything = api.get("/api/v1/commands").json()
        assert {c["type"] for c in everything} == {"shell", "service.status"}
        only = api.get("/api/v1/commands", params={"type": "service.status"}).json()
        assert [c["summary"] for c in only] == ["cron"]
        mine = api.get("/api/v1/commands", params={"device_id": first.device_id}).json()
        assert [c["hostname"] for c in mine] == ["sim-000"]
        assert api.get("/api/v1/commands", params={"status": "nope"}).status_code == 422
