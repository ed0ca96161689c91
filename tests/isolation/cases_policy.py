"""Tenant A's users against tenant B's command policy: A reads and changes only its own rules,
B's rule ids are unknown on A's pages, and B's devices are 404 when trying a command."""

from __future__ import annotations

from tests.isolation.cases import Case, api, page

URL = "/api/v1/tenant/command-policy"
PAGE = "/settings/command-policy"
RULE_FORM = {"id": "page-rule-by-a", "effect": "deny", "types": "shell", "commands": "reboot"}

CASES: list[Case] = [
    api("GET", URL, 200, manage=True),
    api(
        "PUT",
        URL,
        200,
        body={"rules": [{"id": "made-by-a", "effect": "deny"}]},
        modifies=True,
        manage=True,
        variant="only A's own policy",
    ),
    api(
        "POST",
        f"{URL}/test",
        404,
        body={"type": "shell", "payload": {"command": "ls"}, "device_id": "{device_id}"},
        manage=True,
        variant="on B's device",
    ),
    api(
        "POST",
        f"{URL}/test",
        200,
        body={"type": "shell", "payload": {"command": "secret-tool x"}},
        manage=True,
        variant="A's own rules only",
    ),
    page("GET", PAGE, 200, manage=True),
    page("GET", PAGE, 404, query="?edit={policy_rule_id}", manage=True, variant="B's rule"),
    page(
        "POST",
        f"{PAGE}/rules",
        404,
        body={**RULE_FORM, "original_id": "{policy_rule_id}"},
        modifies=True,
        manage=True,
        variant="replacing B's rule",
    ),
    page(
        "POST",
        f"{PAGE}/rules",
        303,
        body=RULE_FORM,
        modifies=True,
        manage=True,
        variant="A's own new rule",
    ),
    page(
        "POST",
        f"{PAGE}/delete",
        303,
        body={"rule_id": "{policy_rule_id}"},
        modifies=True,
        manage=True,
        variant="B's rule: nothing to delete in A",
    ),
    page(
        "POST",
        f"{PAGE}/try",
        200,
        body={"type": "shell", "command": "secret-tool x", "role": "ADMIN", "group": "{name}"},
        manage=True,
        variant="B's group name",
    ),
]
