"""Which devices a principal reaches: the scope as a query condition, and the device of a
path checked with `authorize`."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import Role
from steward.server.accounts.permissions import Permission
from steward.server.accounts.principal import Principal, authorize
from steward.server.devices.models import Device
from steward.server.errors import NotFound


def visible_devices(principal: Principal) -> ColumnElement[bool]:
    """A WHERE condition on `Device` matching the devices within the principal's scope."""
    scope = principal.scope
    if scope.limits_devices:
        allowed = or_(
            Device.group_id.in_(scope.groups) if scope.groups else false(),
            Device.id.in_(scope.devices) if scope.devices else false(),
        )
    else:
        allowed = false() if principal.role is Role.CUSTOMER else true()
    denied = [
        ~Device.group_id.in_(scope.deny_groups) if scope.deny_groups else true(),
        ~Device.id.in_(scope.deny_devices) if scope.deny_devices else true(),
    ]
    return and_(allowed, *denied)


async def device_for(
    session: AsyncSession,
    principal: Principal,
    permission: Permission,
    device_id: uuid.UUID,
) -> Device:
    """The device (of the bound tenant), if the principal may do `permission` on it."""
    device = await session.get(Device, device_id)
    if device is None:
        raise NotFound("no such device", code="device_not_found")
    authorize(principal, permission, device=device)
    return device
