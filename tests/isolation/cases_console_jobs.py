"""Tenant A's users against tenant B's jobs, schedules, devices and commands in the console's
command-engine pages: B's ids are 404, B's devices match no target, A's lists show A's only."""

from __future__ import annotations

from tests.isolation.cases import Case, page

SHELL = {"type": "shell", "p_command": "echo from-a", "devices": "{device_id}"}

CASES: list[Case] = [
    page("GET", "/run", 200, manage=True),
    page("GET", "/run", 200, query="?device={device_id}", manage=True, variant="B's device"),
    page("POST", "/run", 422, body=SHELL, modifies=True, manage=True),
    page(
        "POST",
        "/run/fields",
        200,
        body={"type": "script", "p_script_id": "{script_id}"},
        manage=True,
    ),
    page("POST", "/run/preview", 200, body=SHELL, manage=True),
    page(
        "POST",
        "/run/preview",
        200,
        body={"type": "shell", "p_command": "id", "groups": "{name}"},
        manage=True,
        variant="B's group",
    ),
    page("GET", "/jobs", 200),
    page("GET", "/jobs", 200, query="?status=running", variant="running"),
    page("GET", "/jobs/{job_id}", 404),
    page("GET", "/jobs/{job_id}/progress", 404),
    page("POST", "/jobs/{job_id}/cancel", 404, modifies=True, manage=True),
    page("POST", "/jobs/{job_id}/approve", 404, body={"comment": "a"}, modifies=True, manage=True),
    page("POST", "/jobs/{job_id}/deny", 404, body={"comment": "a"}, modifies=True, manage=True),
    page("GET", "/devices/{device_id}/tags", 404),
    page("POST", "/devices/{device_id}/tags", 404, body={"tags": "a"}, modifies=True, manage=True),
    page("GET", "/schedules", 200),
    page(
        "POST",
        "/schedules/{schedule_id}/enabled",
        404,
        body={"enabled": "0"},
        modifies=True,
        manage=True,
    ),
    page("POST", "/schedules/{schedule_id}/delete", 404, modifies=True, manage=True),
    page("GET", "/commands", 200),
    page("GET", "/commands", 200, query="?device={device_id}", variant="B's device"),
    page("GET", "/commands", 200, query="?user={admin_email}", variant="B's admin"),
    page("POST", "/commands/{command_id}/cancel", 404, modifies=True, manage=True),
]
