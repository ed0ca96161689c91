"""Tenants and groups. Callers own the transaction."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import available_timezones

from sqlalchemy import Select, case, delete, func, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.models import User
from steward.server.accounts.service import normalise_email
from steward.server.devices.models import Device, DeviceStatus
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.files.store import TenantStore, tenants_root
from steward.server.settings import Settings
from steward.server.tenancy.models import DEFAULT_GROUP, Group, Tenant, TenantStatus

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_RESERVED_SLUGS = {"www", "api", "admin", "static", "platform"}
SUPPORTED_LOCALES = ("en", "ko")


def validate_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not _SLUG.match(slug) or slug in _RESERVED_SLUGS:
        raise InvalidInput(
            "a tenant slug is 1-63 lowercase letters, digits or '-', usable as a DNS label",
            code="invalid_slug",
        )
    return slug


def validate_group_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100 or any(ch in name for ch in "/\\\0") or name in {".", ".."}:
        raise InvalidInput("a group name is 1-100 characters without slashes", code="invalid_group")
    return name


async def create_tenant(
    session: AsyncSession,
    slug: str,
    name: str,
    *,
    locale: str = "en",
    timezone: str = "UTC",
) -> Tenant:
    slug = validate_slug(slug)
    validate_locale(locale)
    validate_timezone(timezone)
    if await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Conflict(f"tenant {slug} already exists", code="tenant_exists")
    tenant = Tenant(
        slug=slug, name=name.strip() or slug, locale=locale, timezone=timezone, settings={}
    )
    session.add(tenant)
    await session.flush()
    session.add(Group(tenant_id=tenant.id, name=DEFAULT_GROUP))
    await session.flush()
    return tenant


async def get_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.slug == slug.strip().lower()))
    if tenant is None:
        raise NotFound(f"no tenant {slug!r}", code="tenant_not_found")
    return tenant


async def get_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("no such tenant", code="tenant_not_found")
    return tenant


async def get_or_create_group(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> Group:
    name = validate_group_name(name)
    group = await session.scalar(
        select(Group).where(Group.tenant_id == tenant_id, Group.name == name)
    )
    if group is None:
        group = Group(tenant_id=tenant_id, name=name)
        session.add(group)
        await session.flush()
    return group


async def get_group(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> Group:
    group = await session.scalar(
        select(Group).where(Group.tenant_id == tenant_id, Group.name == name)
    )
    if group is None:
        raise NotFound(f"no group {name!r}", code="group_not_found")
    return group


# --- The tenant as a whole: listing, profile, status, deletion ---------------------------------

# Profile fields: the longest value each column takes.
PROFILE_FIELDS: dict[str, int] = {
    "business_registration_number": 32,
    "contact_name": 200,
    "contact_phone": 32,
    "contact_email": 254,
    "address": 500,
    "notes": 10_000,
}
UPDATABLE_FIELDS = ("name", "locale", "timezone", *PROFILE_FIELDS)
_REGISTRATION_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]*$")
_PHONE = re.compile(r"^\+?[0-9 ().-]+$")


@dataclass(frozen=True, slots=True)
class TenantSummary:
    tenant: Tenant
    devices: int
    online: int


@dataclass(frozen=True, slots=True)
class TenantDetail(TenantSummary):
    groups: int
    users: int


def validate_locale(locale: str) -> str:
    if locale not in SUPPORTED_LOCALES:
        raise InvalidInput(
            f"locale must be one of {', '.join(SUPPORTED_LOCALES)}", code="invalid_locale"
        )
    return locale


def validate_timezone(timezone: str) -> str:
    if timezone not in available_timezones():
        raise InvalidInput(f"unknown time zone {timezone!r}", code="invalid_timezone")
    return timezone


def _validate_field(field: str, value: str) -> str:
    value = value.strip()
    if field == "name":
        if not 1 <= len(value) <= 200:
            raise InvalidInput("a tenant name is 1-200 characters", code="invalid_name")
        return value
    if field == "locale":
        return validate_locale(value)
    if field == "timezone":
        return validate_timezone(value)
    if len(value) > PROFILE_FIELDS[field]:
        raise InvalidInput(
            f"{field} is at most {PROFILE_FIELDS[field]} characters", code="invalid_profile"
        )
    if not value:
        return value  # every profile field may be cleared
    if field == "business_registration_number" and not _REGISTRATION_NUMBER.match(value):
        raise InvalidInput(
            "a business registration number is letters, digits, spaces, '.', '/' or '-'",
            code="invalid_profile",
        )
    if field == "contact_phone" and not _PHONE.match(value):
        raise InvalidInput(
            "a phone number is digits, spaces, '+', '-', '.' or parentheses",
            code="invalid_profile",
        )
    if field == "contact_email":
        return normalise_email(value)
    return value


def _counts_query() -> Select[Tenant, int, int]:
    """Tenants with their device and online counts, in one grouped query."""
    online = func.coalesce(func.sum(case((DeviceStatus.online == true(), 1), else_=0)), 0)
    return (
        select(Tenant, func.count(Device.id), online)
        .outerjoin(Device, Device.tenant_id == Tenant.id)
        .outerjoin(DeviceStatus, DeviceStatus.device_id == Device.id)
        .group_by(Tenant.id)
    )


async def list_tenants(session: AsyncSession) -> list[TenantSummary]:
    rows = await session.execute(_counts_query().order_by(Tenant.slug))
    return [TenantSummary(tenant, int(devices), int(online)) for tenant, devices, online in rows]


async def describe_tenant(session: AsyncSession, slug: str) -> TenantDetail:
    row = (
        await session.execute(_counts_query().where(Tenant.slug == slug.strip().lower()))
    ).first()
    if row is None:
        raise NotFound(f"no tenant {slug!r}", code="tenant_not_found")
    tenant, devices, online = row
    groups = await session.scalar(select(func.count(Group.id)).where(Group.tenant_id == tenant.id))
    users = await session.scalar(select(func.count(User.id)).where(User.tenant_id == tenant.id))
    return TenantDetail(tenant, int(devices), int(online), int(groups or 0), int(users or 0))


async def update_tenant(session: AsyncSession, slug: str, **fields: str) -> Tenant:
    """Change the name, locale, time zone or profile fields given; the rest stay."""
    unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
    if unknown:
        raise InvalidInput(f"cannot update {', '.join(unknown)}", code="invalid_field")
    values = {field: _validate_field(field, value) for field, value in fields.items()}
    tenant = await get_tenant_by_slug(session, slug)
    for field, value in values.items():
        setattr(tenant, field, value)
    await session.flush()
    return tenant


async def set_tenant_status(session: AsyncSession, slug: str, status: str) -> Tenant:
    """Disable (no logins, no agents, no enrollment) or re-enable a tenant."""
    try:
        new_status = TenantStatus(status)
    except ValueError:
        raise InvalidInput(
            f"status must be one of {', '.join(TenantStatus)}", code="invalid_status"
        ) from None
    tenant = await get_tenant_by_slug(session, slug)
    tenant.status = new_status
    await session.flush()
    return tenant


def tenants_dir(settings: Settings) -> Path:
    """Where tenants keep their files: `<data_dir>/tenants/<tenant id>/`."""
    return tenants_root(settings.data_dir)


def tenant_store(settings: Settings, tenant_id: uuid.UUID) -> TenantStore:
    """The tenant's files, in a directory named by its id so that a new slug moves nothing."""
    return TenantStore(settings.data_dir, tenant_id)


async def delete_tenant(session: AsyncSession, settings: Settings, slug: str) -> Tenant:
    """Delete a tenant with everything it owns (the foreign keys cascade) and its files.

    The files go once the rows are deleted in the caller's transaction, so a refused delete
    (a files directory that is a link, say) leaves them in place."""
    slug = validate_slug(slug)
    tenant = await get_tenant_by_slug(session, slug)
    files = tenant_store(settings, tenant.id)
    files.check_root()
    if session.get_bind().dialect.name == "postgresql":
        # audit_events is append-only by trigger; the tenant's own deletion may remove its log.
        await session.execute(text("SELECT set_config('steward.audit_purge', 'on', true)"))
    await session.execute(delete(Tenant).where(Tenant.id == tenant.id))
    await session.flush()
    session.expunge_all()  # the tenant's rows in this session are gone
    files.remove_tenant_files()
    return tenant
