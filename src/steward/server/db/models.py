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
from steward.server.files.models import FileBackup, FilePolicy, FileUpload
from steward.server.jobs.models import Approval, CommandTransition, DeviceTag, Job, Schedule
from steward.server.platform.models import PlatformAdmin
from steward.server.scripts import models as _script_models  # noqa: F401  (tables)
from steward.server.tenancy.models import Group, Tenant
from steward.server.terminal.models import TerminalPolicy, TerminalSession

__all__ = [
    "AgentCredential",
    "Approval",
    "AuditEvent",
    "Base",
    "Command",
    "CommandTransition",
    "Device",
    "DeviceMetric",
    "DeviceStatus",
    "DeviceTag",
    "EnrollmentPin",
    "FileBackup",
    "FilePolicy",
    "FileUpload",
    "Group",
    "Job",
    "PlatformAdmin",
    "Schedule",
    "Tenant",
    "TerminalPolicy",
    "TerminalSession",
    "User",
]
