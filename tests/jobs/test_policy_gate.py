"""Tenant policy rules decide at submission, for single commands and for jobs alike."""

from __future__ import annotations

from tests.jobs.helpers import fleet
from tests.support import LiveServer, Seeder, login


def _shell(text: str) -> dict[str, object]:
    return {"type": "shell", "payload": {"command": text}}


def test_allow_list_deny_and_approval_rules_apply_on_every_submission(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    (agent,) = fleet(server, seeder, tenant, 1, group="shops")
    engineer = seeder.user(tenant, "ENGINEER")
    rules = {
        "rules": [
            {"id": "helpdesk", "effect": "allow", "roles": ["ENGINEER"], "types": ["shell"],
             "commands": ["uptime", "systemctl restart *"]},
            {"id": "restarts", "effect": "require_approval",
             "commands": ["systemctl restart *"]},
            {"id": "no-wipe", "effect": "deny", "types": ["shell"], "commands": ["rm -rf *"]},
        ]
    }  # fmt: skip
    with login(server, tenant) as admin:
        assert admin.put("/api/v1/tenant/command-policy", json=rules).status_code == 200
    device = f"/api/v1/devices/{agent.device_id}/commands"
    with login(server, tenant, engineer) as api:
        assert api.post(device, json=_shell("uptime")).json()["status"] == "queued"
        waits = api.post(device, json=_shell("systemctl restart nginx")).json()
        assert waits["status"] == "pending_approval"
        for refused in ("ls", "uptime; ls", "echo $(uptime)"):
            response = api.post(device, json=_shell(refused))
            assert response.status_code == 403, refused
            assert response.json()["error"]["code"] == "blocked_by_policy"
        job = api.post("/api/v1/jobs", json=_shell("ls") | {"target": {"all": True}})
        assert job.status_code == 403 and job.json()["error"]["code"] == "blocked_by_policy"
        preview = api.post("/api/v1/commands/assess", json=_shell("ls")).json()
        assert preview["blocked"] and "not allowed" in preview["blocked_reason"]
    with login(server, tenant) as admin:  # not in the allow list's roles; deny still applies
        assert admin.post(device, json=_shell("ls")).json()["status"] == "queued"
        wipe = admin.post(device, json=_shell("cd / && rm -rf /srv"))
        assert wipe.status_code == 403 and "no-wipe" in wipe.json()["error"]["message"]
        events = admin.get(
            "/api/v1/audit/events", params={"action": "command.blocked", "limit": 50}
        ).json()
        rules_hit = {e["detail"].get("rule") for e in events["events"]}
        assert {"no-wipe", ""} <= rules_hit
