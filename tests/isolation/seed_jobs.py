"""A job, a schedule and a device tag of each side (`{job_id}`, `{schedule_id}`, `{tag}`)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def seed(api: httpx.Client, side: Any) -> dict[str, str]:
    device = side.device_ids[0]
    job = api.post(
        "/api/v1/jobs",
        json={
            "type": "shell",
            "payload": {"command": "echo job"},
            "target": {"devices": [device]},
            "max_concurrency": "1",
        },
    )
    job.raise_for_status()
    schedule = api.post(
        "/api/v1/schedules",
        json={
            "name": f"sched-{uuid.uuid4().hex[:8]}",
            "cron": "0 3 * * *",
            "job": {"type": "shell", "payload": {"command": "echo s"}, "target": {"all": True}},
        },
    )
    schedule.raise_for_status()
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    api.put(f"/api/v1/devices/{device}/tags", json={"tags": [tag]}).raise_for_status()
    return {"job_id": job.json()["id"], "schedule_id": schedule.json()["id"], "tag": tag}
