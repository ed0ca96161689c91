"""How the permission matrix calls the command policy's routes (API and console page)."""

from __future__ import annotations

from tests.permissions.routes import Request

SHELL = {"type": "shell", "payload": {"command": "echo permitted"}}

REQUESTS: dict[tuple[str, str], Request] = {
    ("PUT", "/api/v1/tenant/command-policy"): Request({"rules": []}),
    ("POST", "/api/v1/tenant/command-policy/test"): Request(SHELL),
    ("POST", "/settings/command-policy/rules"): Request(
        {"id": "{new_group}", "effect": "deny", "types": "shell", "commands": "reboot"},
        fresh=("new_group",),  # a fresh slug: a new rule id each time
    ),
    # a rule that is not there: deleting it changes nothing (and is still refused to others)
    ("POST", "/settings/command-policy/delete"): Request({"rule_id": "matrix-none"}),
    ("POST", "/settings/command-policy/try"): Request(
        {"type": "shell", "command": "echo permitted", "role": "ADMIN"}
    ),
}
