"""How the permission matrix calls the script library's routes.

Routes on one script take `{script_id}`: a script of the caller's own tenant, made fresh for
the call by `fresh_script_id` (see FRESH; `Team.fresh` must consult it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.permissions.routes import Request

SCRIPT = {
    "name": "matrix-{script_name}",
    "interpreter": "sh",
    "body": "echo matrix\n",
    "parameters": [],
}


def fresh_script_id(team: Any) -> str:
    """A new script of the team's tenant, made by its admin (through the API)."""
    from steward.server.accounts.models import Role

    with team.client(Role.ADMIN) as admin:
        made = admin.post(
            "/api/v1/scripts", json={**SCRIPT, "name": f"matrix-{uuid.uuid4().hex[:8]}"}
        )
    made.raise_for_status()
    return str(made.json()["id"])


def fresh_script_name(_team: Any) -> str:
    return uuid.uuid4().hex[:8]


FRESH: dict[str, Callable[[Any], str]] = {
    "script_id": fresh_script_id,
    "script_name": fresh_script_name,
}

REQUESTS: dict[tuple[str, str], Request] = {
    ("GET", "/api/v1/scripts"): Request(),
    ("POST", "/api/v1/scripts"): Request(SCRIPT, fresh=("script_name",)),
    ("GET", "/api/v1/scripts/{script_id}"): Request(fresh=("script_id",)),
    ("GET", "/api/v1/scripts/{script_id}/versions/{version}"): Request(
        fresh=("script_id",), path="/api/v1/scripts/{script_id}/versions/1"
    ),
    ("POST", "/api/v1/scripts/{script_id}/versions"): Request(
        {"body": "echo two\n"}, fresh=("script_id",)
    ),
    ("PATCH", "/api/v1/scripts/{script_id}"): Request(
        {"description": "changed by the matrix"}, fresh=("script_id",)
    ),
    ("POST", "/api/v1/scripts/{script_id}/resolve"): Request({"params": {}}, fresh=("script_id",)),
    ("POST", "/scripts"): Request(
        {"name": "matrix-{script_name}", "interpreter": "sh", "body": "echo matrix"},
        fresh=("script_name",),
    ),
    ("GET", "/scripts/{script_id}"): Request(fresh=("script_id",)),
    ("POST", "/scripts/{script_id}"): Request(
        {"name": "matrix-{script_name}", "description": "x"}, fresh=("script_id", "script_name")
    ),
    ("POST", "/scripts/{script_id}/versions"): Request(
        {"interpreter": "sh", "body": "echo two"}, fresh=("script_id",)
    ),
    ("POST", "/scripts/{script_id}/archive"): Request({"archived": "0"}, fresh=("script_id",)),
}
