"""Builders and browser helpers for the console's tests (fixtures are in `conftest.py`)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from steward.protocol import EnrollRequest
from steward.server.accounts.models import Role
from steward.server.accounts.service import create_user
from steward.server.db.base import utcnow
from steward.server.db.engine import create_engine, create_session_factory
from steward.server.devices.enrollment import create_pin, enroll
from steward.server.devices.models import Device, DeviceMetric, DeviceStatus
from steward.server.runtime import Runtime
from steward.server.tenancy.models import Tenant
from steward.server.tenancy.service import create_tenant, get_tenant_by_slug

PASSWORD = "correct horse battery"
SECRET_KEY = "web-tests-secret-key-not-a-placeholder"
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')

ACCOUNTS = {
    "acme": (
        "Asia/Seoul",
        {
            "admin@acme.test": Role.ADMIN,
            "viewer@acme.test": Role.VIEWER,
            "customer@acme.test": Role.CUSTOMER,
        },
    ),
    "other": ("UTC", {"admin@other.test": Role.ADMIN}),
}


async def seed_accounts(url: str) -> None:
    """The tenants and users of `ACCOUNTS` (done once: password hashing is slow)."""
    engine = create_engine(url)
    try:
        async with create_session_factory(engine, system=True)() as session:
            for slug, (timezone, users) in ACCOUNTS.items():
                tenant = await create_tenant(session, slug, slug.title(), timezone=timezone)
                for email, role in users.items():
                    await create_user(session, tenant, email, PASSWORD, role)
            await session.commit()
    finally:
        await engine.dispose()


async def load_tenant(runtime: Runtime, slug: str) -> Tenant:
    async with runtime.system_sessions() as session:
        return await get_tenant_by_slug(session, slug)


async def make_user(runtime: Runtime, tenant: Tenant, email: str, role: Role) -> None:
    async with runtime.system_sessions() as session:
        await create_user(session, tenant, email, PASSWORD, role)
        await session.commit()


async def make_device(
    runtime: Runtime,
    tenant: Tenant,
    hostname: str,
    *,
    online: bool = True,
    metrics: int = 0,
    **specs: Any,
) -> uuid.UUID:
    """Enroll a device the way an agent does (PIN), then give it a live state and history."""
    secret = runtime.settings.effective_secret_key
    async with runtime.system_sessions() as session:
        pin, _, _ = await create_pin(
            session, secret, tenant, group_name=None, ttl_s=600, created_by="tests"
        )
        enrolled = await enroll(
            session,
            secret,
            EnrollRequest(pin=pin, machine_id=uuid.uuid4().hex, hostname=hostname, os_name="Linux"),
        )
        device_id = uuid.UUID(enrolled.device_id)
        now = utcnow()
        if specs:
            await session.execute(update(Device).where(Device.id == device_id).values(**specs))
        await session.execute(
            update(DeviceStatus)
            .where(DeviceStatus.device_id == device_id)
            .values(
                online=online,
                last_seen=now - timedelta(seconds=12),
                offline_after=now + timedelta(hours=1) if online else now,
                cpu_percent=37.5,
                memory_percent=61.0,
                ip_addresses=["192.0.2.10"],
                uptime_s=90061,
                transport="ws",
            )
        )
        session.add_all(
            DeviceMetric(
                tenant_id=tenant.id,
                device_id=device_id,
                at=now - timedelta(minutes=metrics - i),
                cpu_percent=10.0 + i,
                memory_percent=50.0,
            )
            for i in range(metrics)
        )
        await session.commit()
        return device_id


@dataclass
class World:
    """The tenants of `ACCOUNTS`: `acme` with three devices, `other` with one."""

    acme: Tenant
    other: Tenant
    device_id: uuid.UUID
    script_device_id: uuid.UUID
    other_device_id: uuid.UUID


# ---- browser helpers -------------------------------------------------------------------------


def csrf_token(html: str) -> str:
    match = _CSRF_INPUT.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def login(http: httpx.AsyncClient, email: str, *, password: str = PASSWORD) -> httpx.Response:
    """Sign in on the client's host (`<tenant>.localhost`)."""
    form = await http.get("/login")
    return await http.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_token(form.text),
        },
    )


def htmx(token: str, **headers: str) -> dict[str, str]:
    """Headers htmx sends (the CSRF token comes from `hx-headers` on <body>)."""
    return {"HX-Request": "true", "X-CSRF-Token": token, **headers}


async def bearer(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Headers for the operator API as `email` (signed in through `/api/v1/auth/login`)."""
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
