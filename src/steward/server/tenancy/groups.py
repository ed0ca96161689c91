"""Groups of a tenant's devices: create, list, rename, delete, move devices between them.
Callers own the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.devices.models import Device
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.tenancy.models import DEFAULT_GROUP, Group
from steward.server.tenancy.service import get_group, validate_group_name


@dataclass(frozen=True, slots=True)
class GroupSummary:
    group: Group
    devices: int


def _refuse_default(name: str, action: str) -> None:
    if name == DEFAULT_GROUP:
        raise InvalidInput(
            f"the default group {DEFAULT_GROUP!r} cannot be {action}", code="default_group"
        )


async def _ensure_free(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> None:
    taken = await session.scalar(
        select(Group.id).where(Group.tenant_id == tenant_id, Group.name == name)
    )
    if taken is not None:
        raise Conflict(f"group {name!r} already exists", code="group_exists")


async def create_group(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> Group:
    name = validate_group_name(name)
    await _ensure_free(session, tenant_id, name)
    group = Group(tenant_id=tenant_id, name=name)
    session.add(group)
    await session.flush()
    return group


async def list_groups(session: AsyncSession, tenant_id: uuid.UUID) -> list[GroupSummary]:
    """The tenant's groups with their device counts, the default group first."""
    rows = await session.execute(
        select(Group, func.count(Device.id))
        .outerjoin(Device, Device.group_id == Group.id)
        .where(Group.tenant_id == tenant_id)
        .group_by(Group.id)
        .order_by(Group.name != DEFAULT_GROUP, Group.name)
    )
    return [GroupSummary(group, int(devices)) for group, devices in rows]


async def rename_group(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, new_name: str
) -> Group:
    _refuse_default(name, "renamed")
    group = await get_group(session, tenant_id, name)
    new_name = validate_group_name(new_name)
    if new_name == group.name:
        return group
    await _ensure_free(session, tenant_id, new_name)
    group.name = new_name
    await session.flush()
    return group


async def delete_group(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, *, move_to: str | None = None
) -> int:
    """Delete a group. Its devices, if any, move to `move_to`, which is then required.
    Returns how many devices moved."""
    _refuse_default(name, "deleted")
    group = await get_group(session, tenant_id, name)
    devices = await session.scalar(select(func.count(Device.id)).where(Device.group_id == group.id))
    moved = int(devices or 0)
    if moved:
        if move_to is None:
            raise Conflict(
                f"group {name!r} has {moved} device(s); say which group they move to",
                code="group_not_empty",
            )
        if move_to == name:
            raise InvalidInput("devices cannot move to the group being deleted", code="same_group")
        target = await get_group(session, tenant_id, move_to)
        await session.execute(
            update(Device).where(Device.group_id == group.id).values(group_id=target.id)
        )
    await session.delete(group)
    await session.flush()
    return moved


async def move_device(session: AsyncSession, device_id: uuid.UUID, group_name: str) -> Device:
    """Put a device into another group of its own tenant."""
    device = await session.get(Device, device_id)
    if device is None:
        raise NotFound("no such device", code="device_not_found")
    group = await get_group(session, device.tenant_id, group_name)
    device.group_id = group.id
    await session.flush()
    return device
