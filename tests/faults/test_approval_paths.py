"""Nobody approves their own command or job, whatever the path: the API, the job API, the
console (cookie + CSRF), an API token with command.approve, or as ADMIN; every refusal is
audited as blocked."""

from __future__ import annotations

import contextlib
import re

import httpx

from tests.faults.conftest import audit, command, sim_fleet
from tests.support import LiveServer, Seeder, host_header, login, tenant_client

REBOOT = {"type": "shell", "payload": {"command": "reboot"}}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _console(server: LiveServer, slug: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, headers=host_header(server, slug), timeout=10)
    form = client.get("/login")
    token = _CSRF.search(form.text)
    assert token, form.text
    signed_in = client.post(
        "/login",
        data={"email": email, "password": Seeder.PASSWORD, "csrf_token": token.group(1)},
    )
    assert signed_in.status_code in {200, 303}, signed_in.text
    return client


def _user_id(admin: httpx.Client, email: str) -> str:
    return next(u["id"] for u in admin.get("/api/v1/users").json() if u["email"] == email)


def test_nobody_approves_their_own_request_by_any_path(server: LiveServer, seeder: Seeder) -> None:
    tenant, other = seeder.tenant(), seeder.tenant()
    (sim,) = sim_fleet(server, seeder, tenant, 1)
    author = seeder.user(tenant, "ENGINEER")
    viewer = seeder.user(tenant, "VIEWER")
    with login(server, tenant) as admin:
        # The author's account needs approval for everything, besides `reboot` being high risk.
        scoped = admin.patch(
            f"/api/v1/users/{_user_id(admin, author)}", json={"scope": {"approval_required": True}}
        )
        assert scoped.status_code == 200, scoped.text
    with login(server, tenant, author) as api:
        created = api.post(f"/api/v1/devices/{sim.device_id}/commands", json=REBOOT).json()
        assert created["status"] == "pending_approval"
        command_id = created["id"]
        echo = {"type": "shell", "payload": {"command": "echo hi"}, "target": {"all": True}}
        job = api.post("/api/v1/jobs", json=echo).json()
        assert job["status"] == "pending_approval", job
        job_id = job["id"]

        refusals = [
            api.post(f"/api/v1/commands/{command_id}/approve", json={"comment": "mine"}),
            api.post(f"/api/v1/jobs/{job_id}/approve"),
        ]
        token = api.post(
            "/api/v1/account/tokens", json={"name": "ci", "permissions": ["command.approve"]}
        )
        assert token.status_code == 201, token.text
    with tenant_client(server, tenant.slug, Authorization=f"Bearer {token.json()['token']}") as t:
        refusals += [
            t.post(f"/api/v1/commands/{command_id}/approve"),
            t.post(f"/api/v1/jobs/{job_id}/approve"),
        ]
    for refused in refusals:
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "own_command", refused.text

    with contextlib.closing(_console(server, tenant.slug, author)) as console:
        page = console.get(f"/commands/{command_id}")
        assert page.status_code == 200
        csrf = _CSRF.search(page.text)
        assert csrf, page.text
        refused = console.post(
            f"/commands/{command_id}/approve", data={"csrf_token": csrf.group(1)}
        )
        assert refused.status_code == 403, refused.text

    with login(server, tenant) as admin:  # the author becomes ADMIN: still not their own
        promoted = admin.patch(f"/api/v1/users/{_user_id(admin, author)}", json={"role": "ADMIN"})
        assert promoted.status_code == 200, promoted.text
    with login(server, tenant, author) as api:
        for path in (f"/api/v1/commands/{command_id}/approve", f"/api/v1/jobs/{job_id}/approve"):
            refused = api.post(path)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "own_command"
        assert api.get("/api/v1/approvals").json() == []  # not in their own inbox
        assert command(api, command_id)["status"] == "pending_approval"
        assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "pending_approval"
    assert sim.take() == []  # nothing reached the device

    # A viewer may not approve at all; another tenant's admin does not see it.
    with login(server, tenant, viewer) as api:
        refused = api.post(f"/api/v1/commands/{command_id}/approve")
        assert refused.status_code == 403 and refused.json()["error"]["code"] != "own_command"
    with login(server, other) as foreign:
        refused = foreign.post(f"/api/v1/commands/{command_id}/approve")
        assert refused.status_code == 404, refused.text
        assert foreign.post(f"/api/v1/jobs/{job_id}/approve").status_code == 404

    with login(server, tenant) as admin:
        blocked = [
            e for e in audit(admin, "command.approved") if e["target"] == f"command:{command_id}"
        ]
        # API, token, console, as ADMIN: each refusal is in the log, as the author.
        assert len(blocked) == 4, blocked
        assert {e["result"] for e in blocked} == {"blocked"}
        assert {e["detail"]["reason"] for e in blocked} == {"own_command"}
        assert len({e["actor"] for e in blocked if e["actor"].startswith("user:")}) == 1
        names = sorted(e["actor_name"] for e in blocked)
        assert names == sorted([author] * 3 + [f"{author} (token ci)"]), names
        jobs = [e for e in audit(admin, "job.approved") if e["target"] == f"job:{job_id}"]
        assert len(jobs) == 3 and {e["result"] for e in jobs} == {"blocked"}, jobs
        # Someone else may approve: then it runs.
        approved = admin.post(f"/api/v1/commands/{command_id}/approve")
        assert approved.status_code == 200 and approved.json()["status"] == "queued"
    assert sim.take() == [command_id]
