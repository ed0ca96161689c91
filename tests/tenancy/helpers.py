"""Building tenants, users and devices through the real services, for tenancy tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from steward.protocol import EnrollRequest
from steward.server.accounts.models import Role
from steward.server.accounts.service import create_user
from steward.server.db.rls import SET_CONTEXT_PREFIX
from steward.server.devices import enrollment
from steward.server.devices.models import DeviceStatus
from steward.server.tenancy.models import Tenant
from steward.server.tenancy.service import create_tenant, get_or_create_group

Sessions = async_sessionmaker[AsyncSession]
KEY = "tenancy-test-key"


def new_slug() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def make_tenant(session: AsyncSession, *, admin: bool = True, **kwargs: Any) -> Tenant:
    slug = new_slug()
    tenant = await create_tenant(session, slug, slug.upper(), **kwargs)
    if admin:
        await create_user(session, tenant, f"admin@{slug}.example", "quiet-lantern-42", Role.ADMIN)
    return tenant


async def make_device(
    session: AsyncSession, tenant: Tenant, *, group: str | None = None, online: bool = False
) -> uuid.UUID:
    """Enroll a device with a PIN, as an agent would, and set whether it is online."""
    if group:
        await get_or_create_group(session, tenant.id, group)
    pin, _row, _group = await enrollment.create_pin(
        session, KEY, tenant, group_name=group, ttl_s=600, created_by="test"
    )
    response = await enrollment.enroll(
        session, KEY, EnrollRequest(pin=pin, machine_id=uuid.uuid4().hex, hostname="h")
    )
    device_id = uuid.UUID(response.device_id)
    status = await session.get(DeviceStatus, device_id)
    assert status is not None
    status.online = online
    await session.flush()
    return device_id


@contextmanager
def count_queries(sessions: Sessions) -> Iterator[list[str]]:
    """The SQL statements run through the factory's engine inside the block."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The row-level security context (PostgreSQL, once per transaction) is not a query.
        if statement.lstrip().upper().startswith("SELECT") and not statement.startswith(
            SET_CONTEXT_PREFIX
        ):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
