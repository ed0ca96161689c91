"""A command policy rule of each side, for the isolation cases (`{policy_rule_id}` is B's)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def seed(api: httpx.Client, side: Any) -> dict[str, str]:
    rule_id = f"isolated-{uuid.uuid4().hex[:10]}"
    rule = {"id": rule_id, "effect": "deny", "types": ["shell"], "commands": ["secret-tool *"]}
    api.put("/api/v1/tenant/command-policy", json={"rules": [rule]}).raise_for_status()
    return {"policy_rule_id": rule_id}
