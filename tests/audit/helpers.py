"""Audit test helpers: tenants with events, and an attacker's direct access to the table."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit.models import AuditEvent
from steward.server.audit.service import record
from steward.server.tenancy.service import create_tenant
from tests.support import PG_HOST, PG_PORT, PG_USER

SQLITE_TRIGGER = (
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)


async def new_tenant(system_sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    slug = f"au{uuid.uuid4().hex[:8]}"
    async with system_sessions() as session:
        tenant = await create_tenant(session, slug, slug.upper())
        await session.commit()
        return tenant.id


async def record_events(
    system_sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, count: int, **kw: Any
) -> list[AuditEvent]:
    """`count` events one after the other: seq 1..count (for a new tenant); every second one
    failed, so that there is something to edit."""
    events = []
    for number in range(1, count + 1):
        values: dict[str, Any] = {
            "actor": f"user:{uuid.uuid4()}",
            "actor_name": f"person{number}@example.test",
            "action": f"test.event{number}",
            "result": "failure" if number % 2 == 0 else "success",
            "detail": {"number": number},
        } | kw
        events.append(await record(system_sessions, tenant_id=tenant_id, **values))
    return events


async def tamper(database_url: str, *statements: str) -> None:
    """Change audit_events behind Steward's back, as someone with direct database access would:
    past the append-only trigger (superuser with triggers off on PostgreSQL, trigger dropped
    on SQLite) and past row-level security."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(str(url.database))
        try:
            connection.execute("DROP TRIGGER IF EXISTS audit_events_append_only")
            for statement in statements:
                connection.execute(statement)
            connection.execute(SQLITE_TRIGGER)  # put back: the database is shared by tests
            connection.commit()
        finally:
            connection.close()
        return
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=url.database, timeout=5
    )
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            for statement in statements:
                await conn.execute(statement)
    finally:
        await conn.close()
