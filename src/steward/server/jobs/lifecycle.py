"""The history of a command's states: every transition stored with its time and actor.

    pending_approval -> approved | denied | expired
    (approved | new) -> held (a job's turn) -> queued -> sent -> running
    running -> succeeded | failed | timed_out | cancelled

Any state before `succeeded | failed | timed_out` may also end in `cancelled` or `expired`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.db.base import utcnow
from steward.server.jobs.models import CommandTransition

SYSTEM = "system"
AGENT = "agent"


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    command_ids: Iterable[uuid.UUID],
    status: str,
    *,
    actor: str,
    note: str = "",
    at: datetime | None = None,
) -> None:
    """Store that these commands (all of one tenant) entered `status` (one statement)."""
    when = at or utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "command_id": command_id,
            "status": status,
            "at": when,
            "actor": actor[:254],
            "note": note[:255],
        }
        for command_id in command_ids
    ]
    await _insert(session, rows)


async def record_many(
    session: AsyncSession,
    changes: Sequence[tuple[uuid.UUID, uuid.UUID, str]],
    *,
    actor: str,
    note: str = "",
) -> None:
    """(tenant_id, command_id, status) of commands of any tenants, in one statement."""
    when = utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "command_id": command_id,
            "status": status,
            "at": when,
            "actor": actor[:254],
            "note": note[:255],
        }
        for tenant_id, command_id, status in changes
    ]
    await _insert(session, rows)


async def _insert(session: AsyncSession, rows: list[dict[str, object]]) -> None:
    """Core executemany (a job's 10,000 transitions: the ORM's bulk path costs 4x as much)."""
    if not rows:
        return
    connection = await session.connection()
    for start in range(0, len(rows), 1000):
        await connection.execute(_INSERT, rows[start : start + 1000])


_INSERT = insert(cast(Table, CommandTransition.__table__))


async def history(session: AsyncSession, command_id: uuid.UUID) -> list[CommandTransition]:
    rows = await session.scalars(
        select(CommandTransition)
        .where(CommandTransition.command_id == command_id)
        .order_by(CommandTransition.id)
    )
    return list(rows)
