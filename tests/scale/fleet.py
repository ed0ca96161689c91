"""Many devices and their history, written straight into the database in bulk (executemany in
chunks), instead of enrolling each device over HTTP: 20,000 devices take seconds, not hours.

The rows are what enrollment, heartbeats, jobs and approvals would have left: a device with its
live status (some online), a group and tags, commands (in jobs and alone), approvals, users,
schedules and audit events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.accounts.models import User
from steward.server.audit.service import record_many
from steward.server.commands.models import Command
from steward.server.db.base import utcnow
from steward.server.devices.models import Device, DeviceStatus
from steward.server.jobs.models import Approval, DeviceTag, Job, Schedule
from steward.server.tenancy.models import Group

CHUNK = 2000
GROUPS = ("lab", "office", "kiosk")
TAGS = ("front-desk", "lab-2")
SOMEONE_ELSE = "operator@elsewhere.example"


@dataclass
class Fleet:
    """What has been added to one tenant so far (devices by number, for their hostnames)."""

    tenant_id: uuid.UUID
    group_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    device_ids: list[uuid.UUID] = field(default_factory=list)


async def _insert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        await session.execute(insert(table), list(rows[start : start + CHUNK]))


async def add_groups(session: AsyncSession, fleet: Fleet) -> None:
    rows = await session.execute(
        select(Group.name, Group.id).where(Group.tenant_id == fleet.tenant_id)
    )
    existing = {name: group_id for name, group_id in rows.all()}
    new = [
        {"id": uuid.uuid4(), "tenant_id": fleet.tenant_id, "name": name, "created_at": utcnow()}
        for name in GROUPS
        if name not in existing
    ]
    await _insert(session, Group.__table__, new)  # type: ignore[arg-type]
    fleet.group_ids = existing | {row["name"]: row["id"] for row in new}


async def add_devices(session: AsyncSession, fleet: Fleet, count: int) -> list[uuid.UUID]:
    """`count` more devices (`host-00000`...), every other one online, spread over the groups;
    one in ten tagged. Hostnames are numbered on from the fleet's size."""
    if not fleet.group_ids:
        await add_groups(session, fleet)
    now = utcnow()
    first = len(fleet.device_ids)
    ids = [uuid.uuid4() for _ in range(count)]
    groups = list(fleet.group_ids.values())
    devices, statuses, tags = [], [], []
    for offset, device_id in enumerate(ids):
        number = first + offset
        devices.append(
            {
                "id": device_id,
                "tenant_id": fleet.tenant_id,
                "group_id": groups[number % len(groups)],
                "machine_id": f"scale-{device_id.hex}",
                "hostname": f"host-{number:05d}",
                "os_name": "Linux",
                "os_version": "6.1",
                "agent_version": "scale",
                "enrolled_at": now,
                "disks": [],
                "top_processes": [],
            }
        )
        online = number % 2 == 0
        statuses.append(
            {
                "device_id": device_id,
                "tenant_id": fleet.tenant_id,
                "online": online,
                "last_seen": now - timedelta(seconds=number % 3600),
                "offline_after": now + timedelta(hours=1) if online else now,
                "cpu_percent": float(number % 100),
                "memory_percent": 50.0,
                "ip_addresses": [
                    f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
                ],
                "logged_in_users": [],
                "heartbeat_interval_s": 30.0,
                "transport": "ws" if online else "",
            }
        )
        if number % 10 == 0:
            tags.append(
                {
                    "tenant_id": fleet.tenant_id,
                    "device_id": device_id,
                    "tag": TAGS[number % 20 // 10],
                }
            )
    await _insert(session, Device.__table__, devices)  # type: ignore[arg-type]
    await _insert(session, DeviceStatus.__table__, statuses)  # type: ignore[arg-type]
    await _insert(session, DeviceTag.__table__, tags)  # type: ignore[arg-type]
    fleet.device_ids.extend(ids)
    return ids


def _command(fleet: Fleet, device_id: uuid.UUID, **values: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "tenant_id": fleet.tenant_id,
        "device_id": device_id,
        "type": "shell",
        "payload": {"command": "uptime"},
        "status": "succeeded",
        "timeout_s": 60.0,
        "exit_code": 0,
        "created_by": SOMEONE_ELSE,
        "risk": "low",
        "risk_reasons": [],
        "created_at": now,
        "finished_at": now,
        "job_id": None,  # every row has every key: executemany takes the first row's keys
        "approvals_needed": 0,
    } | values


async def add_activity(
    session: AsyncSession,
    fleet: Fleet,
    device_ids: Sequence[uuid.UUID],
    *,
    jobs: int,
    waiting: int,
    users: int,
    schedules: int,
) -> list[uuid.UUID]:
    """For these devices: one finished command each, `jobs` jobs over all of them (one command
    per device each), `waiting` single commands and as many jobs waiting for approval (each
    approved once already), `users` users and `schedules` schedules. Returns the jobs' ids."""
    now = utcnow()
    commands = [_command(fleet, device_id) for device_id in device_ids]
    job_rows, approvals = [], []
    for number in range(jobs + waiting):
        job_id = uuid.uuid4()
        pending = number >= jobs
        job_rows.append(
            {
                "id": job_id,
                "tenant_id": fleet.tenant_id,
                "created_at": now - timedelta(seconds=number),
                "name": f"job {number}",
                "type": "shell",
                "payload": {"command": "uptime"},
                "target": {"all": True},
                "status": "pending_approval" if pending else "succeeded",
                "created_by": SOMEONE_ELSE,
                "timeout_s": 60.0,
                "expiry_s": 600.0,
                "total": len(device_ids),
                "approvals_needed": 2 if pending else 0,
            }
        )
        status = "pending_approval" if pending else "succeeded"
        commands.extend(_command(fleet, d, job_id=job_id, status=status) for d in device_ids)
        if pending:
            approvals.append(_approval(fleet, job_id=job_id))
    for number in range(waiting):
        command = _command(
            fleet,
            device_ids[number % len(device_ids)],
            status="pending_approval",
            approvals_needed=2,
        )
        commands.append(command)
        approvals.append(_approval(fleet, command_id=command["id"]))
    await _insert(session, Job.__table__, job_rows)  # type: ignore[arg-type]
    await _insert(session, Command.__table__, commands)  # type: ignore[arg-type]
    await _insert(session, Approval.__table__, approvals)  # type: ignore[arg-type]
    await _insert(session, User.__table__, [_user(fleet) for _ in range(users)])  # type: ignore[arg-type]
    await _insert(session, Schedule.__table__, [_schedule(fleet) for _ in range(schedules)])  # type: ignore[arg-type]
    return [row["id"] for row in job_rows]


def _approval(fleet: Fleet, **subject: uuid.UUID) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": fleet.tenant_id,
        "approver": "approver@elsewhere.example",
        "decision": "approve",
        "comment": "",
        "at": utcnow(),
        "command_id": None,
        "job_id": None,
    } | subject


def _user(fleet: Fleet) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": fleet.tenant_id,
        "email": f"user-{uuid.uuid4().hex[:8]}@scale.example",
        "password_hash": "!unusable",
        "role": "VIEWER",
        "created_at": utcnow(),
    }


def _schedule(fleet: Fleet) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": fleet.tenant_id,
        "created_at": utcnow(),
        "name": f"nightly {uuid.uuid4().hex[:6]}",
        "cron": "0 3 * * *",
        "template": {"type": "shell", "payload": {"command": "uptime"}, "target": {"all": True}},
        "created_by": SOMEONE_ELSE,
        "enabled": False,
    }


async def add_audit_events(
    system_sessions: async_sessionmaker[AsyncSession], fleet: Fleet, count: int
) -> None:
    """`count` events through the audit service (they are chained, so not written by hand)."""
    events = [
        {"actor": SOMEONE_ELSE, "action": "device.tags", "result": "success",
         "device_id": fleet.device_ids[n % len(fleet.device_ids)], "detail": {"n": n}}
        for n in range(count)
    ]  # fmt: skip
    await record_many(system_sessions, fleet.tenant_id, events)


async def add_job(
    session: AsyncSession, fleet: Fleet, device_ids: Sequence[uuid.UUID]
) -> uuid.UUID:
    """One finished job with a command on each of these devices."""
    job_id = uuid.uuid4()
    job = {
        "id": job_id, "tenant_id": fleet.tenant_id, "created_at": utcnow(), "name": "big job",
        "type": "shell", "payload": {"command": "uptime"}, "target": {"all": True},
        "status": "succeeded", "created_by": SOMEONE_ELSE, "timeout_s": 60.0,
        "expiry_s": 600.0, "total": len(device_ids), "approvals_needed": 0,
    }  # fmt: skip
    await _insert(session, Job.__table__, [job])  # type: ignore[arg-type]
    commands = [_command(fleet, device_id, job_id=job_id) for device_id in device_ids]
    await _insert(session, Command.__table__, commands)  # type: ignore[arg-type]
    return job_id
