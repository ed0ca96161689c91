"""Device queries for the console and the API. Sessions passed in are tenant-bound."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, UnaryExpression, delete, false, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal, authorize
from steward.server.devices.access import device_for, visible_devices
from steward.server.devices.models import Device, DeviceMetric, DeviceStatus
from steward.server.devices.schemas import (
    DeviceCounts,
    DeviceDetail,
    DevicePublic,
    DeviceSort,
    MetricPoint,
)
from steward.server.errors import NotFound
from steward.server.tenancy.models import Group

MAX_PAGE = 1000
# Ties are broken by id so that offset pages never repeat or skip a device.
ORDER_BY: dict[DeviceSort, tuple[UnaryExpression[Any], ...]] = {
    DeviceSort.HOSTNAME: (Device.hostname.asc(), Device.id.asc()),
    DeviceSort.HOSTNAME_DESC: (Device.hostname.desc(), Device.id.desc()),
    # never seen (no time yet) last either way
    DeviceSort.LAST_SEEN: (
        DeviceStatus.last_seen.asc().nulls_last(),
        Device.hostname.asc(),
        Device.id.asc(),
    ),
    DeviceSort.LAST_SEEN_DESC: (
        DeviceStatus.last_seen.desc().nulls_last(),
        Device.hostname.asc(),
        Device.id.asc(),
    ),
}


def _os_label(device: Device) -> str:
    return " ".join(part for part in (device.os_name, device.os_version) if part) or ""


def _base_query() -> Select[Device, str, DeviceStatus]:
    return (
        select(Device, Group.name, DeviceStatus)
        .join(Group, Group.id == Device.group_id)
        .outerjoin(DeviceStatus, DeviceStatus.device_id == Device.id)
    )


def _public(device: Device, group: str, status: DeviceStatus | None) -> dict[str, object]:
    return {
        "id": device.id,
        "hostname": device.hostname,
        "group": group,
        "online": bool(status and status.online),
        "last_seen": status.last_seen if status else None,
        "os": device.os_name,
        "agent_version": device.agent_version,
        "cpu_percent": status.cpu_percent if status else None,
        "memory_percent": status.memory_percent if status else None,
        "ip_addresses": list(status.ip_addresses or []) if status else [],
    }


async def list_devices(
    session: AsyncSession,
    principal: Principal,
    *,
    search: str | None = None,
    online: bool | None = None,
    group: str | None = None,
    sort: DeviceSort = DeviceSort.HOSTNAME,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[DevicePublic], int]:
    """One page of the devices the principal reaches and the total that match, in two
    queries whatever the page size (the hostname orders walk `ix_devices_tenant_hostname`)."""
    query = _base_query().where(visible_devices(principal))
    if search:
        query = query.where(Device.hostname.ilike(f"%{_escape_like(search)}%", escape="\\"))
    if online is not None:
        query = query.where(func.coalesce(DeviceStatus.online, false()) == online)
    if group:
        query = query.where(Group.name == group)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(
        query.order_by(*ORDER_BY[sort]).limit(min(limit, MAX_PAGE)).offset(offset)
    )
    return [DevicePublic.model_validate(_public(d, g, s)) for d, g, s in rows.all()], total


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def device_counts(session: AsyncSession, principal: Principal) -> DeviceCounts:
    visible = visible_devices(principal)
    total = await session.scalar(select(func.count(Device.id)).where(visible)) or 0
    online = (
        await session.scalar(
            select(func.count(DeviceStatus.device_id))
            .join(Device, Device.id == DeviceStatus.device_id)
            .where(DeviceStatus.online == true(), visible)
        )
        or 0
    )
    return DeviceCounts(total=total, online=online, offline=total - online)


async def get_device(
    session: AsyncSession,
    principal: Principal,
    device_id: uuid.UUID,
    permission: Permission = Permission.DEVICE_VIEW,
) -> DeviceDetail:
    """The device, if the principal may do `permission` on it (404 outside their scope)."""
    row = (await session.execute(_base_query().where(Device.id == device_id))).first()
    if row is None:
        raise NotFound("no such device", code="device_not_found")
    device, group, status = row
    authorize(principal, permission, device=device)
    return DeviceDetail.model_validate(
        {
            **_public(device, group, status),
            "os": _os_label(device),
            "machine_id": device.machine_id,
            "os_name": device.os_name,
            "os_version": device.os_version,
            "architecture": device.architecture,
            "cpu_model": device.cpu_model,
            "cpu_cores": device.cpu_cores,
            "memory_total_bytes": device.memory_total_bytes,
            "serial_number": device.serial_number,
            "boot_time": device.boot_time,
            "enrolled_at": device.enrolled_at,
            "inventory_at": device.inventory_at,
            "uptime_s": status.uptime_s if status else None,
            "logged_in_users": list(status.logged_in_users or []) if status else [],
            "transport": status.transport if status else "",
            "heartbeat_interval_s": status.heartbeat_interval_s if status else None,
            "disks": device.disks or [],
            "top_processes": device.top_processes or [],
        }
    )


async def recent_metrics(
    session: AsyncSession,
    principal: Principal,
    device_id: uuid.UUID,
    since: datetime,
    limit: int = 2000,
) -> list[MetricPoint]:
    await device_for(session, principal, Permission.DEVICE_VIEW, device_id)
    rows = await session.scalars(
        select(DeviceMetric)
        .where(DeviceMetric.device_id == device_id, DeviceMetric.at >= since)
        .order_by(DeviceMetric.at.desc())
        .limit(limit)
    )
    points = [
        MetricPoint(at=m.at, cpu_percent=m.cpu_percent, memory_percent=m.memory_percent)
        for m in rows
    ]
    points.reverse()
    return points


async def prune_metrics(session: AsyncSession, older_than: datetime) -> int:
    """Delete history older than `older_than` (retention). Returns how many rows went."""
    result = await session.execute(delete(DeviceMetric).where(DeviceMetric.at < older_than))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
