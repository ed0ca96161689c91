"""Tenant A's users against tenant B's jobs, schedules, tags and command history."""

from __future__ import annotations

from tests.isolation.cases import Case, api

ECHO = {"type": "shell", "payload": {"command": "echo from-a"}}
SPEC = ECHO | {"target": {"all": True}}

CASES: list[Case] = [
    api(
        "POST",
        "/api/v1/targets/preview",
        200,
        body={"devices": ["{device_id}"]},
        manage=True,
        variant="B's device",
    ),
    api(
        "POST",
        "/api/v1/targets/preview",
        200,
        body={"groups": ["{name}"]},
        manage=True,
        variant="B's group",
    ),
    api(
        "POST",
        "/api/v1/targets/preview",
        200,
        body={"tags": ["{tag}"]},
        manage=True,
        variant="B's tag",
    ),
    api(
        "POST",
        "/api/v1/jobs",
        422,
        body=ECHO | {"target": {"devices": ["{device_id}"]}},
        modifies=True,
        manage=True,
        variant="B's device",
    ),
    api(
        "POST",
        "/api/v1/jobs",
        422,
        body=ECHO | {"target": {"tags": ["{tag}"]}},
        modifies=True,
        manage=True,
        variant="B's tag",
    ),
    api("GET", "/api/v1/jobs", 200),
    api("GET", "/api/v1/approvals/jobs", 200, manage=True),
    api("GET", "/api/v1/jobs/{job_id}", 404),
    api("POST", "/api/v1/jobs/{job_id}/cancel", 404, modifies=True, manage=True),
    api("POST", "/api/v1/jobs/{job_id}/approve", 404, modifies=True, manage=True),
    api("POST", "/api/v1/jobs/{job_id}/deny", 404, modifies=True, manage=True),
    api("GET", "/api/v1/devices/{device_id}/tags", 404),
    api(
        "PUT",
        "/api/v1/devices/{device_id}/tags",
        404,
        body={"tags": ["from-a"]},
        modifies=True,
        manage=True,
    ),
    api("GET", "/api/v1/tags", 200),
    api("GET", "/api/v1/schedules", 200),
    api(
        "POST",
        "/api/v1/schedules",
        201,
        body={"name": "a", "cron": "0 1 * * *", "job": SPEC},
        modifies=True,
        manage=True,
    ),
    api("GET", "/api/v1/schedules/{schedule_id}", 404),
    api(
        "PATCH",
        "/api/v1/schedules/{schedule_id}",
        404,
        body={"enabled": False},
        modifies=True,
        manage=True,
    ),
    api("DELETE", "/api/v1/schedules/{schedule_id}", 404, modifies=True, manage=True),
    api("GET", "/api/v1/commands", 200, variant="all"),
    api("GET", "/api/v1/commands", 200, query="?device_id={device_id}", variant="B's device"),
    api("GET", "/api/v1/commands", 200, query="?job_id={job_id}", variant="B's job"),
    api("POST", "/api/v1/commands/{command_id}/cancel", 404, modifies=True, manage=True),
]
