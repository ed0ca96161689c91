"""Deleting a tenant removes its audit log too, past the append-only trigger (PostgreSQL)."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import func, select

from steward.server.audit.models import AuditEvent
from steward.server.db.engine import create_engine, create_session_factory
from tests.audit.helpers import new_tenant, record_events
from tests.support import run

STEWARD = [sys.executable, "-m", "steward.cli"]


async def test_cli_tenant_delete_with_audit_events(cli_env: dict[str, str]) -> None:
    engine = create_engine(cli_env["STEWARD_DATABASE_URL"])
    system_sessions = create_session_factory(engine, system=True)
    try:
        tenant_id = await new_tenant(system_sessions)
        keep_id = await new_tenant(system_sessions)
        await record_events(system_sessions, tenant_id, 3)
        await record_events(system_sessions, keep_id, 2)
        async with system_sessions() as session:
            from steward.server.tenancy.service import get_tenant

            slug = (await get_tenant(session, tenant_id)).slug
        deleted = await asyncio.to_thread(
            run, [*STEWARD, "tenant", "delete", slug, "--yes"], env=cli_env
        )
        assert deleted.returncode == 0, deleted.stderr
        async with system_sessions() as session:
            counts = dict(
                (
                    await session.execute(
                        select(AuditEvent.tenant_id, func.count()).group_by(AuditEvent.tenant_id)
                    )
                ).all()
            )
        assert counts == {keep_id: 2}
    finally:
        await engine.dispose()
