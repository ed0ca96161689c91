"""A job and a schedule of each side, for the console's job pages (`{job_id}`,
`{schedule_id}` are B's)."""

from __future__ import annotations

from typing import Any

import httpx


def seed(api: httpx.Client, side: Any) -> dict[str, str]:
    job = {"type": "shell", "payload": {"command": "echo job-of-the-tenant"},
           "target": {"devices": [side.device_ids[0]]}, "max_concurrency": "1"}  # fmt: skip
    made = api.post("/api/v1/jobs", json=job)
    made.raise_for_status()
    schedule = api.post(
        "/api/v1/schedules",
        json={"name": "schedule-of-the-tenant", "cron": "0 3 * * *", "job": job},
    )
    schedule.raise_for_status()
    return {"job_id": str(made.json()["id"]), "schedule_id": str(schedule.json()["id"])}
