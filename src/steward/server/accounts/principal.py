"""Who is acting, and the one authorisation check every path goes through."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from steward.server.accounts.models import Role
from steward.server.accounts.permissions import READ_ONLY, Permission, role_permissions
from steward.server.accounts.scope import UserScope, shell_allowed
from steward.server.errors import NotFound, PermissionDenied

_NAMES = frozenset(p.value for p in Permission)


def utcnow() -> datetime:
    """The clock of authorisation (tests freeze it)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Principal:
    """A user of one tenant, signed in through a session or an API token."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    email: str
    role: Role
    locale: str | None = None
    permissions: frozenset[Permission] = frozenset()
    scope: UserScope = field(default_factory=UserScope)
    timezone: str = "UTC"
    session_id: uuid.UUID | None = None
    token_id: uuid.UUID | None = None
    token_name: str = ""
    mfa_enabled: bool = False
    mfa_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}" if self.token_id else f"user:{self.user_id}"

    @property
    def actor_name(self) -> str:
        return f"{self.email} (token {self.token_name})" if self.token_id else self.email

    def can(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.permissions


def effective_permissions(
    role: Role | str, scope: UserScope, token_permissions: list[str] | None = None
) -> frozenset[Permission]:
    """The role's permissions, less what the scope denies, and within a token's when given."""
    allowed = role_permissions(role) - set(scope.deny_permissions)
    if token_permissions is not None:
        allowed &= {Permission(p) for p in token_permissions if p in _NAMES}
    return frozenset(allowed)


class DeviceLike(Protocol):
    id: uuid.UUID
    group_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Decision:
    needs_approval: bool = False


def local_time(principal: Principal, now: datetime) -> datetime:
    try:
        return now.astimezone(ZoneInfo(principal.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return now.astimezone(UTC)


def reaches(principal: Principal, device: DeviceLike) -> bool:
    return principal.scope.reaches(
        device.id, device.group_id, customer=principal.role is Role.CUSTOMER
    )


def authorize(
    principal: Principal,
    permission: Permission,
    *,
    device: DeviceLike | None = None,
    command_type: str | None = None,
    command_payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Decision:
    """Role, scope and time window, on every path (REST, pages, WebSockets, jobs, CLI).

    Raises `PermissionDenied` (403) when the role or scope forbids it, and `NotFound` for a
    device outside the user's scope (as if it did not exist)."""
    if permission not in principal.permissions:
        raise PermissionDenied(f"you may not {permission.value}", code="forbidden")
    if device is not None and not reaches(principal, device):
        raise NotFound("device not found", code="not_found")
    scope = principal.scope
    if permission not in READ_ONLY and not scope.in_time_window(
        local_time(principal, now or utcnow())
    ):
        raise PermissionDenied(
            "this is outside the hours you may act in", code="outside_time_window"
        )
    if command_type is not None:
        if scope.command_types is not None and command_type not in scope.command_types:
            raise PermissionDenied(
                f"you may not run {command_type} commands", code="command_not_allowed"
            )
        text = (command_payload or {}).get("command")
        if command_type == "shell" and isinstance(text, str):
            allowed, reason = shell_allowed(scope, text)
            if not allowed:
                raise PermissionDenied(f"command not allowed: {reason}", code="command_not_allowed")
    return Decision(needs_approval=scope.approval_required and command_type is not None)
