"""Migration 0002 on SQLite and PostgreSQL: existing tenants get empty profiles, and going
back to 0001 keeps every tenant-owned row."""

from __future__ import annotations

import uuid
from typing import Any

from alembic import command
from sqlalchemy import Uuid, bindparam, text

from steward.server.db.engine import create_engine
from steward.server.db.migrate import alembic_config, check, upgrade
from tests.support import Databases, run_async


def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    async def work() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                typed = [bindparam(name, type_=Uuid()) for name in params]  # ids only
                result = await connection.execute(text(statement).bindparams(*typed), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return list(run_async(work))


def test_profile_columns_migrate_both_ways(databases: Databases, backend: str) -> None:
    url = databases.create(backend)
    command.downgrade(alembic_config(url), "0001")
    tenant_id, group_id = uuid.uuid4(), uuid.uuid4()
    _sql(
        url,
        "INSERT INTO tenants (id, slug, name, status, locale, timezone, settings, created_at) "
        "VALUES (:id, 'old', 'Old', 'active', 'en', 'UTC', '{}', CURRENT_TIMESTAMP)",
        id=tenant_id,
    )
    _sql(
        url,
        "INSERT INTO groups (id, tenant_id, name, created_at) "
        "VALUES (:id, :tenant_id, 'all', CURRENT_TIMESTAMP)",
        id=group_id,
        tenant_id=tenant_id,
    )

    upgrade(url)
    check(url)
    profile = _sql(
        url,
        "SELECT business_registration_number, contact_name, contact_phone, contact_email, "
        "address, notes FROM tenants WHERE slug = 'old'",
    )
    assert [tuple(row) for row in profile] == [("",) * 6]

    command.downgrade(alembic_config(url), "0001")
    assert len(_sql(url, "SELECT id FROM groups WHERE name = 'all'")) == 1
    assert len(_sql(url, "SELECT id FROM tenants WHERE slug = 'old'")) == 1
    upgrade(url)
