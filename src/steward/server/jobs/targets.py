"""Which devices a job is for: listed devices, groups, tags, or all the tenant's devices, always
within what the principal may reach (their scope)."""

from __future__ import annotations

import re
import uuid
from typing import Protocol, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.principal import Principal
from steward.server.devices.access import visible_devices
from steward.server.devices.models import Device, DeviceStatus
from steward.server.jobs.models import DeviceTag
from steward.server.tenancy.models import Group

TAG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_LISTED = 10_000


def normalise_tag(value: str) -> str:
    tag = value.strip().lower()
    if not TAG.fullmatch(tag):
        raise ValueError(
            f"{value!r} is not a tag (lowercase letters, digits, '.', '_', '-'; 1-64 characters)"
        )
    return tag


class Target(BaseModel):
    """Devices of any of the given kinds (a union); `all` means every device in reach."""

    model_config = ConfigDict(extra="forbid")

    devices: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_LISTED)
    groups: list[str] = Field(default_factory=list, max_length=200)  # names or ids
    tags: list[str] = Field(default_factory=list, max_length=100)
    all: bool = False

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [normalise_tag(tag) for tag in value]

    @model_validator(mode="after")
    def _something(self) -> Target:
        if not (self.devices or self.groups or self.tags or self.all):
            raise ValueError("choose devices, groups, tags or all")
        return self


async def _condition(session: AsyncSession, target: Target) -> ColumnElement[bool]:
    if target.all:
        return Device.id.is_not(None)
    parts: list[ColumnElement[bool]] = []
    if target.devices:
        parts.append(Device.id.in_(target.devices))
    if target.groups:
        ids: list[uuid.UUID] = []
        names: list[str] = []
        for item in target.groups:
            try:
                ids.append(uuid.UUID(item))
            except ValueError:
                names.append(item)
        found = await session.scalars(
            select(Group.id).where(or_(Group.id.in_(ids), Group.name.in_(names)))
        )
        parts.append(Device.group_id.in_(list(found)))
    if target.tags:
        parts.append(
            Device.id.in_(select(DeviceTag.device_id).where(DeviceTag.tag.in_(target.tags)))
        )
    return or_(*parts) if parts else false()


class Reached(Protocol):
    """What a job needs of a target device (a row, not a whole Device: 20,000 of them)."""

    id: uuid.UUID
    group_id: uuid.UUID
    hostname: str


async def resolve(session: AsyncSession, principal: Principal, target: Target) -> list[Reached]:
    """The devices (of the bound tenant) the target names and the principal reaches."""
    condition = await _condition(session, target)
    rows = await session.execute(
        select(Device.id, Device.group_id, Device.hostname)
        .where(condition, visible_devices(principal))
        .order_by(Device.hostname, Device.id)
    )
    return cast(list[Reached], rows.all())


class Preview(BaseModel):
    count: int
    online: int
    sample: list[dict[str, object]]  # up to 20: id, hostname, online


async def preview(session: AsyncSession, principal: Principal, target: Target) -> Preview:
    condition = await _condition(session, target)
    reach = visible_devices(principal)
    count = await session.scalar(select(func.count()).select_from(Device).where(condition, reach))
    online = await session.scalar(
        select(func.count())
        .select_from(Device)
        .join(DeviceStatus, DeviceStatus.device_id == Device.id)
        .where(condition, reach, DeviceStatus.online.is_(True))
    )
    rows = await session.execute(
        select(Device.id, Device.hostname, DeviceStatus.online)
        .outerjoin(DeviceStatus, DeviceStatus.device_id == Device.id)
        .where(condition, reach)
        .order_by(Device.hostname)
        .limit(20)
    )
    sample = [
        {"id": str(device_id), "hostname": hostname, "online": bool(is_online)}
        for device_id, hostname, is_online in rows.all()
    ]
    return Preview(count=count or 0, online=online or 0, sample=sample)


async def set_tags(session: AsyncSession, device: Device, tags: list[str]) -> list[str]:
    """Replace a device's tags."""
    wanted = sorted({normalise_tag(tag) for tag in tags})
    existing = list(
        await session.scalars(select(DeviceTag).where(DeviceTag.device_id == device.id))
    )
    for row in existing:
        if row.tag not in wanted:
            await session.delete(row)
    have = {row.tag for row in existing}
    for tag in wanted:
        if tag not in have:
            session.add(DeviceTag(device_id=device.id, tag=tag))
    await session.flush()
    return wanted


async def tags_of(session: AsyncSession, device_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(DeviceTag.tag).where(DeviceTag.device_id == device_id).order_by(DeviceTag.tag)
    )
    return list(rows)


async def all_tags(session: AsyncSession) -> list[str]:
    rows = await session.scalars(select(DeviceTag.tag).distinct().order_by(DeviceTag.tag))
    return list(rows)
