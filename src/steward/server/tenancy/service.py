"""Tenants and groups. Callers own the transaction."""

from __future__ import annotations

import re
import uuid
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.tenancy.models import DEFAULT_GROUP, Group, Tenant

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
    if locale not in SUPPORTED_LOCALES:
        raise InvalidInput(
            f"locale must be one of {', '.join(SUPPORTED_LOCALES)}", code="invalid_locale"
        )
    if timezone not in available_timezones():
        raise InvalidInput(f"unknown time zone {timezone!r}", code="invalid_timezone")
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
