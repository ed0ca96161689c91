"""Managing a tenant's users (for holders of `user.manage`). Sessions bound to the tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts import mfa
from steward.server.accounts.models import Role, User
from steward.server.accounts.principal import Principal
from steward.server.accounts.scope import UserScope
from steward.server.accounts.sessions import revoke_all
from steward.server.devices.models import Device
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.tenancy.models import Group


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.email)))


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None:
        raise NotFound("no such user", code="user_not_found")
    return user


async def check_scope(session: AsyncSession, scope: UserScope) -> None:
    """Every group and device named in a scope exists in the tenant."""
    group_ids = {*(scope.groups or []), *scope.deny_groups}
    device_ids = {*(scope.devices or []), *scope.deny_devices}
    if group_ids:
        found = await session.scalar(select(func.count()).where(Group.id.in_(group_ids)))
        if found != len(group_ids):
            raise InvalidInput("the scope names a group that does not exist", code="invalid_scope")
    if device_ids:
        found = await session.scalar(select(func.count()).where(Device.id.in_(device_ids)))
        if found != len(device_ids):
            raise InvalidInput("the scope names a device that does not exist", code="invalid_scope")


async def _other_active_admins(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).where(
            User.role == Role.ADMIN, User.is_active.is_(True), User.id != user_id
        )
    )
    return int(count or 0)


async def update_user(
    session: AsyncSession, actor: Principal, user: User, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply changes; returns what changed (old, new). A change of role, scope or activity
    ends the user's sessions: they sign in again with the new rights."""
    changed: dict[str, Any] = {}
    role = changes.get("role")
    active = changes.get("is_active")
    losing_admin = (role is not None and role != Role.ADMIN) or active is False
    if (
        user.role == Role.ADMIN
        and losing_admin
        and await _other_active_admins(session, user.id) == 0
    ):
        raise Conflict("the tenant needs at least one active ADMIN", code="last_admin")
    if user.id == actor.user_id and (active is False or (role and role != user.role)):
        raise Conflict("you cannot disable yourself or change your own role", code="own_account")
    if "scope" in changes and changes["scope"] is not None:
        scope = UserScope.model_validate(changes["scope"])
        await check_scope(session, scope)
        new_scope = scope.model_dump(mode="json", exclude_defaults=True)
        if new_scope != (user.scope or {}):
            changed["scope"] = [user.scope or {}, new_scope]
            user.scope = new_scope
    for field in ("role", "full_name", "is_active", "locale"):
        value = changes.get(field)
        if value is not None and getattr(user, field) != value:
            changed[field] = [getattr(user, field), value]
            setattr(user, field, value)
    if {"role", "scope", "is_active"} & changed.keys():
        changed["sessions_ended"] = await revoke_all(session, user.id, "privilege_change")
    await session.flush()
    return changed


async def reset_mfa(session: AsyncSession, user: User) -> int:
    """Remove the user's second factor (lost phone); their sessions end."""
    mfa.disable(user)
    ended = await revoke_all(session, user.id, "mfa_reset")
    await session.flush()
    return ended
