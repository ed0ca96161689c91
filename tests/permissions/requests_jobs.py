"""How the permission matrix calls the jobs, schedules and tags routes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.permissions.routes import Request

ECHO = {"type": "shell", "payload": {"command": "echo permitted"}}


def _job(team: Any, author: bool) -> str:
    """A job of the team's tenant on its device: the approval-bound engineer's (waiting for
    approval) or the admin's (running, concurrency 1)."""
    from steward.server.accounts.models import Role
    from tests.permissions.support import bearer
    from tests.support import tenant_client

    body = ECHO | {"target": {"devices": [team.device_id]}, "max_concurrency": "1"}
    headers = bearer(team.author) if author else bearer(team.tokens[Role.ADMIN])
    with tenant_client(team.server, team.tenant.slug, **headers) as api:
        made = api.post("/api/v1/jobs", json=body)
    made.raise_for_status()
    return str(made.json()["id"])


def _schedule(team: Any) -> str:
    from steward.server.accounts.models import Role

    with team.client(Role.ADMIN) as admin:
        made = admin.post(
            "/api/v1/schedules",
            json={
                "name": f"matrix-{uuid.uuid4().hex[:8]}",
                "cron": "0 3 * * *",
                "job": ECHO | {"target": {"all": True}},
            },
        )
    made.raise_for_status()
    return str(made.json()["id"])


def _queued_command(team: Any) -> str:
    from steward.server.accounts.models import Role

    with team.client(Role.ADMIN) as admin:
        made = admin.post(f"/api/v1/devices/{team.device_id}/commands", json=ECHO)
    made.raise_for_status()
    return str(made.json()["id"])


FRESH: dict[str, Callable[[Any], str]] = {
    "job_id": lambda team: _job(team, author=False),
    "pending_job_id": lambda team: _job(team, author=True),
    "schedule_id": _schedule,
    "queued_id": _queued_command,
}

SPEC = ECHO | {"target": {"all": True}}

REQUESTS: dict[tuple[str, str], Request] = {
    ("POST", "/api/v1/targets/preview"): Request({"all": True}),
    ("POST", "/api/v1/jobs"): Request(SPEC),
    ("GET", "/api/v1/jobs/{job_id}"): Request(fresh=("job_id",)),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): Request(fresh=("job_id",)),
    ("POST", "/api/v1/jobs/{job_id}/approve"): Request(
        fresh=("pending_job_id",), path="/api/v1/jobs/{pending_job_id}/approve"
    ),
    ("POST", "/api/v1/jobs/{job_id}/deny"): Request(
        fresh=("pending_job_id",), path="/api/v1/jobs/{pending_job_id}/deny"
    ),
    ("PUT", "/api/v1/devices/{device_id}/tags"): Request({"tags": ["matrix"]}),
    ("POST", "/api/v1/schedules"): Request({"name": "matrix", "cron": "0 1 * * *", "job": SPEC}),
    ("GET", "/api/v1/schedules/{schedule_id}"): Request(fresh=("schedule_id",)),
    ("PATCH", "/api/v1/schedules/{schedule_id}"): Request(
        {"enabled": False}, fresh=("schedule_id",)
    ),
    ("DELETE", "/api/v1/schedules/{schedule_id}"): Request(fresh=("schedule_id",)),
    ("POST", "/api/v1/commands/{command_id}/cancel"): Request(
        fresh=("queued_id",), path="/api/v1/commands/{queued_id}/cancel"
    ),
}

# A schedule runs as its owner: only the owner or a tenant manager changes it. The matrix's
# schedule is the admin's, so the other roles with command.run are refused by the handler.
_NOT_OWNER = "a schedule is changed only by its owner or a tenant manager"
REFUSED_BEYOND_PERMISSION: dict[tuple[tuple[str, str], str], str] = {
    ((method, "/api/v1/schedules/{schedule_id}"), role): _NOT_OWNER
    for method in ("PATCH", "DELETE")
    for role in ("PM", "ENGINEER", "DEPLOY_ENGINEER")
}
