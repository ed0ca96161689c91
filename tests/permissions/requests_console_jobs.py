"""How the permission matrix calls the console's command-engine pages: the composer, jobs,
schedules, device tags, the command history and cancel.

Jobs, schedules and commands are made fresh for each call through the API (`FRESH`): a job of
the admin's, a job of the engineer whose commands wait for approval (nobody approves their
own), a schedule of the admin's (others may not change it: the page says so, with a redirect),
a queued command to cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.permissions.routes import Key, Request

JOB = {"type": "shell", "payload": {"command": "echo matrix"}}
SHELL_FORM = {"type": "shell", "p_command": "echo permitted", "devices": "{device_id}"}


def _job_of(api: Any, device_id: str) -> str:
    made = api.post("/api/v1/jobs", json=JOB | {"target": {"devices": [device_id]}})
    made.raise_for_status()
    return str(made.json()["id"])


def fresh_job_id(team: Any) -> str:
    from steward.server.accounts.models import Role

    with team.client(Role.ADMIN) as admin:
        return _job_of(admin, team.device_id)


def fresh_pending_job_id(team: Any) -> str:
    from tests.permissions.support import bearer
    from tests.support import tenant_client

    with tenant_client(team.server, team.tenant.slug, **bearer(team.author)) as author:
        made = author.post("/api/v1/jobs", json=JOB | {"target": {"devices": [team.device_id]}})
    made.raise_for_status()
    assert made.json()["status"] == "pending_approval", made.json()
    return str(made.json()["id"])


def fresh_schedule_id(team: Any) -> str:
    from steward.server.accounts.models import Role

    body = {"name": "matrix", "cron": "0 3 * * *",
            "job": JOB | {"target": {"devices": [team.device_id]}}}  # fmt: skip
    with team.client(Role.ADMIN) as admin:
        made = admin.post("/api/v1/schedules", json=body)
    made.raise_for_status()
    return str(made.json()["id"])


def fresh_queued_command_id(team: Any) -> str:
    from steward.server.accounts.models import Role

    with team.client(Role.ADMIN) as admin:
        made = admin.post(f"/api/v1/devices/{team.device_id}/commands", json=JOB)
    made.raise_for_status()
    return str(made.json()["id"])


FRESH: dict[str, Callable[[Any], str]] = {
    "job_id": fresh_job_id,
    "pending_job_id": fresh_pending_job_id,
    "schedule_id": fresh_schedule_id,
    "queued_command_id": fresh_queued_command_id,
}

REQUESTS: dict[Key, Request] = {
    ("POST", "/run"): Request(SHELL_FORM),
    ("POST", "/run/fields"): Request({"type": "script"}),
    ("POST", "/run/preview"): Request(SHELL_FORM),
    ("GET", "/jobs/{job_id}"): Request(fresh=("job_id",)),
    ("GET", "/jobs/{job_id}/progress"): Request(fresh=("job_id",)),
    ("POST", "/jobs/{job_id}/cancel"): Request(fresh=("job_id",)),
    ("POST", "/jobs/{job_id}/approve"): Request(
        {"comment": "matrix"}, fresh=("pending_job_id",), path="/jobs/{pending_job_id}/approve"
    ),
    ("POST", "/jobs/{job_id}/deny"): Request(
        {"comment": "matrix"}, fresh=("pending_job_id",), path="/jobs/{pending_job_id}/deny"
    ),
    ("POST", "/devices/{device_id}/tags"): Request({"tags": "matrix"}),
    ("POST", "/schedules/{schedule_id}/enabled"): Request({"enabled": "0"}, fresh=("schedule_id",)),
    ("POST", "/schedules/{schedule_id}/delete"): Request(fresh=("schedule_id",)),
    ("POST", "/commands/{command_id}/cancel"): Request(
        fresh=("queued_command_id",), path="/commands/{queued_command_id}/cancel"
    ),
}
