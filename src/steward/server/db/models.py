"""Imports every model so that `Base.metadata` is complete (Alembic, tests)."""

from steward.server.accounts.models import User
from steward.server.commands.models import Command
from steward.server.db.base import Base
from steward.server.devices.models import (
    AgentCredential,
    Device,
    DeviceMetric,
    DeviceStatus,
    EnrollmentPin,
)
from steward.server.tenancy.models import Group, Tenant

__all__ = [
    "AgentCredential",
    "Base",
    "Command",
    "Device",
    "DeviceMetric",
    "DeviceStatus",
    "EnrollmentPin",
    "Group",
    "Tenant",
    "User",
]
