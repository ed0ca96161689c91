"""Permissions are named verbs; built-in roles are data. Scopes come on top (per user)."""

from __future__ import annotations

from enum import StrEnum

from steward.server.accounts.models import Role


class Permission(StrEnum):
    DEVICE_VIEW = "device.view"
    DEVICE_MANAGE = "device.manage"
    AGENT_ENROLL = "agent.enroll"
    COMMAND_RUN = "command.run"
    COMMAND_APPROVE = "command.approve"
    TERMINAL_OPEN = "terminal.open"
    FILE_READ = "file.read"
    FILE_WRITE = "file.write"
    DEPLOY_TRIGGER = "deploy.trigger"
    JOB_RUN_NOW = "job.run_now"
    CREDENTIAL_VIEW = "credential.view"
    USER_MANAGE = "user.manage"
    TENANT_MANAGE = "tenant.manage"
    AUDIT_VIEW = "audit.view"
    REQUEST_CREATE = "request.create"
    REQUEST_VIEW_OWN = "request.view_own"
    REQUEST_VIEW_ALL = "request.view_all"
    ALERT_MANAGE = "alert.manage"


P = Permission
_ALL = frozenset(Permission)
_ENGINEER = frozenset(
    {
        P.DEVICE_VIEW,
        P.DEVICE_MANAGE,
        P.AGENT_ENROLL,
        P.COMMAND_RUN,
        P.COMMAND_APPROVE,  # others' commands only: nobody approves their own
        P.TERMINAL_OPEN,
        P.FILE_READ,
        P.FILE_WRITE,
        P.REQUEST_CREATE,
        P.REQUEST_VIEW_OWN,
        P.REQUEST_VIEW_ALL,
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _ALL,
    Role.PM: _ALL - {P.USER_MANAGE, P.TENANT_MANAGE, P.CREDENTIAL_VIEW},
    Role.ENGINEER: _ENGINEER,
    Role.DEPLOY_ENGINEER: _ENGINEER | {P.DEPLOY_TRIGGER, P.JOB_RUN_NOW},
    Role.VIEWER: frozenset({P.DEVICE_VIEW, P.AUDIT_VIEW, P.REQUEST_VIEW_ALL}),
    # Customers see only the devices assigned to them (their scope), never the whole tenant.
    Role.CUSTOMER: frozenset({P.DEVICE_VIEW, P.REQUEST_CREATE, P.REQUEST_VIEW_OWN}),
}

# Looking, not acting: allowed outside a user's time windows.
READ_ONLY = frozenset({P.DEVICE_VIEW, P.AUDIT_VIEW, P.REQUEST_VIEW_OWN, P.REQUEST_VIEW_ALL})


def role_permissions(role: Role | str) -> frozenset[Permission]:
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return frozenset()
