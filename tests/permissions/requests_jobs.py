"""How the permission matrix calls the jobs, schedules and tags routes."""

from __future__ import annotations

from tests.permissions.routes import Request

ECHO = {"type": "shell", "payload": {"command": "echo permitted"}}


# `{job_id}`, `{pending_job_id}`, `{schedule_id}` and `{queued_command_id}` are made by the
# makers of requests_console_jobs.py (one set for the API and the console routes).

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
        fresh=("queued_command_id",), path="/api/v1/commands/{queued_command_id}/cancel"
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
