"""The command policy over HTTP, on SQLite and PostgreSQL: the API (read, replace, try), its
refusals, the audit record, and the console page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from steward.server.web.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from tests.support import LiveServer, SeededTenant, Seeder, enroll, login, tenant_client

URL = "/api/v1/tenant/command-policy"
RULES: list[dict[str, Any]] = [
    {
        "id": "no-wipe",
        "description": "never delete recursively",
        "effect": "deny",
        "types": ["shell"],
        "commands": ["rm -rf *", "remove-item -recurse *"],
    },
    {
        "id": "lab-basics",
        "effect": "allow",
        "types": ["shell", "package.*"],
        "commands": [],
        "groups": ["lab"],
        "roles": ["ENGINEER"],
    },
    {
        "id": "restarts",
        "effect": "require_approval",
        "types": ["shell"],
        "commands": ["systemctl restart *"],
    },
]


def _stored(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    defaults = {"description": "", "commands": [], "groups": [], "roles": [], "enabled": True}
    return [defaults | rule for rule in rules]


def _try(api: httpx.Client, command: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "shell", "payload": {"command": command}, **extra}
    response = api.post(f"{URL}/test", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_an_admin_sets_reads_and_tries_the_policy(server: LiveServer, seeder: Seeder) -> None:
    tenant, other = seeder.tenant(), seeder.tenant()
    lab_device = enroll(server, seeder.pin(tenant, group="lab"), machine_id="lab-1")["device_id"]
    office_device = enroll(server, seeder.pin(tenant), machine_id="office-1")["device_id"]
    other_device = enroll(server, seeder.pin(other), machine_id="other-1")["device_id"]
    engineer = seeder.user(tenant, "ENGINEER")
    with login(server, tenant) as admin:
        assert admin.get(URL).json() == {"rules": []}
        saved = admin.put(URL, json={"rules": RULES})
        assert saved.status_code == 200, saved.text
        assert saved.json() == {"rules": _stored(RULES)}
        assert admin.get(URL).json() == {"rules": _stored(RULES)}
        # the audit log says what changed
        events = admin.get("/api/v1/audit/events", params={"action": "settings.command_policy"})
        [event] = events.json()["events"]
        assert event["risk"] == "high" and event["actor_name"] == tenant.admin_email
        assert event["detail"]["changes"] == {
            "added": ["no-wipe", "lab-basics", "restarts"],
            "removed": [],
            "changed": [],
        }
        # the admin (not in the allow rule's roles): only deny and approval rules count
        denied = _try(admin, "echo ok; sudo rm -rf /srv")
        assert denied == {
            "blocked": True,
            "needs_approval": False,
            "code": "command_denied",
            "rule": "no-wipe",
            "effect": "deny",
            "reason": denied["reason"],
        }
        assert "no-wipe" in denied["reason"]
        waits = _try(admin, "bash -c 'systemctl restart nginx'", device_id=office_device)
        assert waits["needs_approval"] and waits["rule"] == "restarts" and not waits["blocked"]
        assert _try(admin, "uptime")["blocked"] is False
        # another tenant's device is not found
        missing = admin.post(
            f"{URL}/test",
            json={"type": "shell", "payload": {"command": "uptime"}, "device_id": other_device},
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "device_not_found"
        # a change is audited as a change; saving the same rules again records nothing new
        changed = [{**RULES[0], "enabled": False}, *RULES[1:]]
        assert admin.put(URL, json={"rules": changed}).status_code == 200
        assert admin.put(URL, json={"rules": changed}).status_code == 200
        events = admin.get("/api/v1/audit/events", params={"action": "settings.command_policy"})
        assert [e["detail"]["changes"]["changed"] for e in events.json()["events"]] == [
            ["no-wipe"],
            [],
        ]
    with login(server, tenant, engineer) as api:
        # the engineer on a lab device is in allow-list mode: shell and packages only
        assert _try(api, "uptime", device_id=lab_device)["blocked"] is False
        power = api.post(
            f"{URL}/test", json={"type": "power.reboot", "payload": {}, "device_id": lab_device}
        ).json()
        assert power["blocked"] and power["code"] == "command_not_allowed" and power["rule"] is None
        # elsewhere the allow rule does not apply
        office = {"type": "power.reboot", "payload": {}, "device_id": office_device}
        assert api.post(f"{URL}/test", json=office).json()["blocked"] is False
        # the engineer may try commands but not read or change the policy
        assert api.get(URL).status_code == 403
        assert api.put(URL, json={"rules": []}).json()["error"]["code"] == "forbidden"
    with login(server, other) as api:
        assert api.get(URL).json() == {"rules": []}  # another tenant's policy is its own


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([{"id": "a", "effect": "deny"}, {"id": "a", "effect": "allow"}], "body.rules"),
        ([{"id": "a", "effect": "deny", "roles": ["ROOT"]}], "body.rules.0.roles.0"),
        ([{"id": "a", "effect": "deny", "commands": ["rm 'x"]}], "body.rules.0.commands"),
        ([{"id": "a", "effect": "deny", "types": ["nope"]}], "body.rules.0.types"),
        ([{"id": "a", "effect": "sometimes"}], "body.rules.0.effect"),
        ([{"id": "A B", "effect": "deny"}], "body.rules.0.id"),
        ([{"id": "a", "effect": "deny", "extra": 1}], "body.rules.0.extra"),
        ("not a list", "body.rules"),
    ],
)
def test_invalid_policies_are_refused_and_change_nothing(
    server: LiveServer, seeder: Seeder, rules: Any, field: str
) -> None:
    tenant = seeder.tenant()
    with login(server, tenant) as admin:
        refused = admin.put(URL, json={"rules": rules})
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["message"].startswith(field), error
        assert admin.get(URL).json() == {"rules": []}


@pytest.mark.parametrize(
    "body",
    [
        {"type": "nope", "payload": {}},
        {"type": "shell", "payload": {}, "device_id": "not-a-uuid"},
        {"type": "shell", "payload": "text"},
        {"payload": {}},
    ],
)
def test_invalid_trials_are_refused(server: LiveServer, seeder: Seeder, body: Any) -> None:
    with login(server, seeder.tenant()) as admin:
        refused = admin.post(f"{URL}/test", json=body)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("role", ["VIEWER", "CUSTOMER", "PM"])
def test_roles_without_tenant_manage_cannot_read_or_change_it(
    server: LiveServer, seeder: Seeder, role: str
) -> None:
    tenant = seeder.tenant()
    with login(server, tenant, seeder.user(tenant, role)) as api:
        for response in (api.get(URL), api.put(URL, json={"rules": RULES})):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "forbidden"
        trial = api.post(f"{URL}/test", json={"type": "shell", "payload": {"command": "ls"}})
        assert trial.status_code == (200 if role == "PM" else 403)


# ---- the console page ------------------------------------------------------------------------


def _browser(server: LiveServer, tenant: SeededTenant, email: str | None = None) -> httpx.Client:
    with login(server, tenant, email) as api:
        token = api.headers["Authorization"].removeprefix("Bearer ")
    csrf = "c" * 32
    return tenant_client(
        server,
        tenant.slug,
        Cookie=f"{SESSION_COOKIE}={token}; {CSRF_COOKIE}={csrf}",
        **{CSRF_HEADER: csrf},
    )


RULE_FORM = {
    "id": "no-reboot",
    "description": "nobody reboots from a shell",
    "effect": "deny",
    "types": "shell",
    "commands": "reboot\nshutdown *",
    "groups": "",
    "enabled": "1",
}


def test_the_console_page_adds_edits_tries_and_deletes_rules(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    with _browser(server, tenant) as browser:
        page = browser.get("/settings/command-policy")
        assert page.status_code == 200 and "No rules yet" in page.text
        assert 'href="/settings/command-policy"' in browser.get("/settings/security").text
        added = browser.post("/settings/command-policy/rules", data=RULE_FORM)
        assert added.status_code == 303, added.text[-3000:]
        page = browser.get(added.headers["location"])
        assert 'data-rule="no-reboot"' in page.text and 'data-effect="deny"' in page.text
        assert "The rule was saved." in page.text
        # a second rule with the same id is refused, with the reason, and nothing changes
        again = browser.post("/settings/command-policy/rules", data=RULE_FORM)
        assert again.status_code == 422 and "A rule with this id already exists." in again.text
        bad = browser.post(
            "/settings/command-policy/rules", data={**RULE_FORM, "id": "x", "commands": "rm 'x"}
        )
        assert bad.status_code == 422 and "close every quote" in bad.text
        # try a command: blocked by the rule, through sudo and a nested shell
        tried = browser.post(
            "/settings/command-policy/try",
            data={"type": "shell", "command": "sudo bash -c 'shutdown -h now'", "role": "ADMIN"},
        )
        assert tried.status_code == 200 and 'data-verdict="blocked"' in tried.text
        assert "Blocked by rule no-reboot." in tried.text
        fine = browser.post(
            "/settings/command-policy/try",
            data={"type": "shell", "command": "uptime", "role": "ENGINEER"},
        )
        assert 'data-verdict="allowed"' in fine.text
        # edit: turned into an approval rule under a new id, kept in its place
        edit = browser.get("/settings/command-policy?edit=no-reboot")
        assert 'name="original_id" value="no-reboot"' in edit.text
        edited = {**RULE_FORM, "original_id": "no-reboot", "id": "ask-reboot"}
        edited["effect"] = "require_approval"
        assert browser.post("/settings/command-policy/rules", data=edited).status_code == 303
        asked = browser.post(
            "/settings/command-policy/try",
            data={"type": "shell", "command": "reboot", "role": "ADMIN"},
        )
        assert "Allowed after approval (rule ask-reboot)." in asked.text
        assert browser.get("/settings/command-policy?edit=no-reboot").status_code == 404
        korean = browser.get("/settings/command-policy?lang=ko")
        assert "명령 정책" in korean.text and "승인 필요" in korean.text
        deleted = browser.post("/settings/command-policy/delete", data={"rule_id": "ask-reboot"})
        assert deleted.status_code == 303
        assert "No rules yet" in browser.get("/settings/command-policy").text
    with login(server, tenant) as admin:
        assert admin.get(URL).json() == {"rules": []}
        events = admin.get("/api/v1/audit/events", params={"action": "settings.command_policy"})
        assert len(events.json()["events"]) == 3  # added, changed, removed


def test_the_console_page_is_for_tenant_managers_only(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with _browser(server, tenant, seeder.user(tenant, "VIEWER")) as browser:
        assert browser.get("/settings/command-policy").status_code == 403
        refused = browser.post("/settings/command-policy/rules", data=RULE_FORM)
        assert refused.status_code == 403
    with login(server, tenant) as admin:
        assert admin.get(URL).json() == {"rules": []}
