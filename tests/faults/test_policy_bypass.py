"""A tenant rule denying `rm -rf *` for shell holds however the command is dressed up:
chained, piped, substituted, quoted, wrapped, or base64-encoded for PowerShell. Each is
refused with `blocked_by_policy` naming the rule and audited as `command.blocked`; a job with
it is refused; an allowed command passes."""

from __future__ import annotations

import base64

import httpx

from tests.faults.conftest import audit, sim_fleet
from tests.support import LiveServer, Seeder, login

RULE = "no-rm-rf"


def _encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


REMOVE_ITEM = "powershell -EncodedCommand " + _encoded("Remove-Item -Recurse C:\\")
BYPASSES = [
    "echo hi; rm -rf /",
    "true && rm -rf /",
    "cat /etc/hosts | rm -rf /",
    "echo $(rm -rf /)",
    "echo `rm -rf /`",
    "r''m -rf /",
    'bash -c "rm -rf /"',
    "sudo rm -rf /",
    f"powershell -EncodedCommand {_encoded('rm -rf C:')}",
]


def _policy(api: httpx.Client, *patterns: str) -> None:
    rule = {"id": RULE, "effect": "deny", "types": ["shell"], "commands": list(patterns)}
    saved = api.put("/api/v1/tenant/command-policy", json={"rules": [rule]})
    assert saved.status_code == 200, saved.text


def _refused_by_rule(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "blocked_by_policy", error
    assert RULE in error["message"], error


def test_every_disguise_of_a_denied_command_is_refused(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    sims = sim_fleet(server, seeder, tenant, 3)
    device = sims[0].device_id
    with login(server, tenant) as api:
        _policy(api, "rm -rf *")
        for text in BYPASSES:
            response = api.post(
                f"/api/v1/devices/{device}/commands",
                json={"type": "shell", "payload": {"command": text}},
            )
            _refused_by_rule(response)
        blocked = audit(api, "command.blocked")
        assert len(blocked) == len(BYPASSES), blocked
        assert {e["result"] for e in blocked} == {"blocked"}
        assert {e["detail"]["rule"] for e in blocked} == {RULE}
        assert sorted(e["detail"]["payload"]["command"] for e in blocked) == sorted(BYPASSES)

        job = api.post(
            "/api/v1/jobs",
            json={
                "type": "shell",
                "payload": {"command": "true && rm -rf /"},
                "target": {"all": True},
            },
        )
        _refused_by_rule(job)
        assert api.get("/api/v1/jobs").json() == []
        assert [e["result"] for e in audit(api, "job.blocked")] == ["blocked"]
        assert api.get("/api/v1/commands").json() == []  # nothing was stored

        allowed = api.post(
            f"/api/v1/devices/{device}/commands",
            json={"type": "shell", "payload": {"command": "echo rm -rf / is refused"}},
        )
        assert allowed.status_code == 201 and allowed.json()["status"] == "queued", allowed.text
        job = api.post(
            "/api/v1/jobs",
            json={"type": "shell", "payload": {"command": "ls /tmp"}, "target": {"all": True}},
        )
        assert job.status_code == 201 and job.json()["total"] == 3, job.text
    assert [len(sim.take()) for sim in sims] == [2, 1, 1]


def test_a_deny_rule_sees_inside_encoded_powershell(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    (sim,) = sim_fleet(server, seeder, tenant, 1)
    with login(server, tenant) as api:
        _policy(api, "rm -rf *", "Remove-Item -Recurse *")
        text = REMOVE_ITEM
        _refused_by_rule(
            api.post(
                f"/api/v1/devices/{sim.device_id}/commands",
                json={"type": "shell", "payload": {"command": text}},
            )
        )


def test_rm_rule_covers_remove_item_in_encoded_powershell(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    (sim,) = sim_fleet(server, seeder, tenant, 1)
    with login(server, tenant) as api:
        _policy(api, "rm -rf *")
        text = REMOVE_ITEM
        _refused_by_rule(
            api.post(
                f"/api/v1/devices/{sim.device_id}/commands",
                json={"type": "shell", "payload": {"command": text}},
            )
        )
