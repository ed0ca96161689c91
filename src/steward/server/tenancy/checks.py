"""Consistency checks across tenants (`steward tenant check`). Read only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import Role, User
from steward.server.devices.models import Device
from steward.server.settings import Settings
from steward.server.tenancy.models import Group, Tenant
from steward.server.tenancy.service import tenants_dir


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: a stable code, the tenant it concerns (slug or directory name), what."""

    code: str
    tenant: str
    message: str


async def _misgrouped_devices(session: AsyncSession) -> list[Finding]:
    rows = await session.execute(
        select(Tenant.slug, Device.id, Device.hostname, Group.id)
        .join(Tenant, Tenant.id == Device.tenant_id)
        .outerjoin(Group, Group.id == Device.group_id)
        .where(or_(Group.id.is_(None), Group.tenant_id != Device.tenant_id))
        .order_by(Tenant.slug, Device.hostname)
    )
    return [
        Finding(
            "device_group_missing" if group_id is None else "device_group_foreign",
            slug,
            f"device {hostname} ({device_id}) is in a group "
            + ("that does not exist" if group_id is None else "of another tenant"),
        )
        for slug, device_id, hostname, group_id in rows
    ]


async def _tenants_without_admin(session: AsyncSession) -> list[Finding]:
    active_admin = exists().where(
        and_(User.tenant_id == Tenant.id, User.role == Role.ADMIN, User.is_active == true())
    )
    slugs = await session.scalars(select(Tenant.slug).where(~active_admin).order_by(Tenant.slug))
    return [
        Finding("no_active_admin", slug, "the tenant has no active ADMIN user") for slug in slugs
    ]


async def _orphan_directories(session: AsyncSession, settings: Settings) -> list[Finding]:
    """Entries of the tenants' files directory not named by a tenant's id."""
    root = tenants_dir(settings)
    if not root.is_dir():
        return []
    tenant_ids = {str(tenant_id) for tenant_id in await session.scalars(select(Tenant.id))}
    return [
        Finding("orphan_directory", entry.name, f"{entry} belongs to no tenant")
        for entry in sorted(root.iterdir())
        if entry.name not in tenant_ids
    ]


async def check_tenants(session: AsyncSession, settings: Settings) -> list[Finding]:
    """Everything found wrong: devices in a missing or foreign group, tenants that nobody can
    administer, files left behind by tenants that no longer exist."""
    return [
        *await _misgrouped_devices(session),
        *await _tenants_without_admin(session),
        *await _orphan_directories(session, settings),
    ]
