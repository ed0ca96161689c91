"""Imports every model so that `Base.metadata` is complete (Alembic, tests)."""

from steward.server.accounts.models import User
from steward.server.audit.models import AuditEvent
from steward.server.commands.models import Command
from steward.server.db.base import Base
from steward.server.devices.models import (
    AgentCredential,
    Device,
    DeviceMetric,
    DeviceStatus,
    EnrollmentPin,
)
from steward.server.platform.models import PlatformAdmin
from steward.server.tenancy.models import Group, Tenant

__all__ = [
    "AgentCredential",
    "AuditEvent",
    "Base",
    "Command",
    "Device",
    "DeviceMetric",
    "DeviceStatus",
    "EnrollmentPin",
    "Group",
    "PlatformAdmin",
    "Tenant",
    "User",
]
