from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class DeviceSort(StrEnum):
    """The orders the device list offers (each served by an index or a bounded top-N sort);
    a leading `-` is descending. Anything else is refused (422)."""

    HOSTNAME = "hostname"
    HOSTNAME_DESC = "-hostname"
    LAST_SEEN = "last_seen"
    LAST_SEEN_DESC = "-last_seen"


class DevicePublic(BaseModel):
    id: uuid.UUID
    hostname: str
    group: str
    online: bool
    last_seen: datetime | None
    os: str
    agent_version: str
    cpu_percent: float | None
    memory_percent: float | None
    ip_addresses: list[str]


class DeviceDetail(DevicePublic):
    machine_id: str
    os_name: str
    os_version: str
    architecture: str
    cpu_model: str
    cpu_cores: int
    memory_total_bytes: int
    serial_number: str
    boot_time: datetime | None
    enrolled_at: datetime
    inventory_at: datetime | None
    uptime_s: int | None
    logged_in_users: list[str]
    transport: str
    heartbeat_interval_s: float | None
    disks: list[dict[str, Any]]
    top_processes: list[dict[str, Any]]
    # The replica whose WebSocket the agent holds (docs/deploy.md, "Presence"); None when the
    # agent is not connected or no replica says so.
    connected_to: str | None = None


class DeviceCounts(BaseModel):
    total: int
    online: int
    offline: int


class MetricPoint(BaseModel):
    at: datetime
    cpu_percent: float
    memory_percent: float


class PinCreate(BaseModel):
    group: str | None = Field(default=None, max_length=100)
    ttl_s: int | None = Field(default=None, ge=60, le=7 * 24 * 3600, description="default 600")


class PinCreated(BaseModel):
    pin: str
    expires_at: datetime
    group: str
