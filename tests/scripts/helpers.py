"""Builders for the script library's tests."""

from __future__ import annotations

from typing import Any

ENV_BODY = 'echo "target=$STEWARD_PARAM_TARGET"\n'

PARAMETERS: list[dict[str, Any]] = [
    {"name": "target", "label": "Target", "type": "string", "required": True, "pass_as": "env"},
    {"name": "count", "type": "integer", "default": 3, "pass_as": "arg"},
    {"name": "force", "type": "boolean", "default": False, "pass_as": "env"},
    {"name": "mode", "type": "choice", "choices": ["fast", "safe"], "default": "safe",
     "pass_as": "arg"},
    {"name": "ticket", "type": "string", "pattern": "[A-Z]{2,5}-[0-9]+", "max_length": 20},
]  # fmt: skip


def script_body(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /api/v1/scripts` body; `name` should be made unique by the caller."""
    return {
        "name": "restart-spooler",
        "description": "Restart the print spooler",
        "interpreter": "sh",
        "body": ENV_BODY,
        "parameters": PARAMETERS,
        "note": "first",
        **overrides,
    }
