"""The history of a command's states: every transition stored with its time and actor.

    pending_approval -> approved | denied | expired
    (approved | new) -> held (a job's turn) -> queued -> sent -> running
    running -> succeeded | failed | timed_out | cancelled

Any state before `succeeded | failed | timed_out` may also end in `cancelled` or `expired`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.db.base import UTCDateTime, utcnow
from steward.server.jobs.models import CommandTransition

SYSTEM = "system"
AGENT = "agent"


# (tenant_id, command_id, status, actor, note): one transition, all of a write at one time.
Change = tuple[uuid.UUID, uuid.UUID, str, str, str]


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
    """Store that these commands (all of one tenant) entered `status`."""
    await insert_changes(
        session, [(tenant_id, c, status, actor, note) for c in command_ids], at or utcnow()
    )


async def record_many(
    session: AsyncSession,
    changes: Sequence[tuple[uuid.UUID, uuid.UUID, str]],
    *,
    actor: str,
    note: str = "",
) -> None:
    """(tenant_id, command_id, status) of commands of any tenants."""
    await insert_changes(session, [(t, c, s, actor, note) for t, c, s in changes], utcnow())


async def insert_changes(session: AsyncSession, changes: Sequence[Change], at: datetime) -> None:
    """Insert transitions: a job's 10,000 at once.

    SQLite: `INSERT … SELECT … FROM json_each(?)`, one parameter per few thousand rows. With
    executemany, every row's parameters went through SQLAlchemy's type processing, and
    sqlite3 took the GIL back after each row (waiting for it while the event loop is busy).
    PostgreSQL: Core executemany (asyncpg pipelines it)."""
    if not changes:
        return
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        for start in range(0, len(changes), _JSON_ROWS):
            rows = [
                [tenant_id.hex, command_id.hex, status, actor[:254], note[:255]]
                for tenant_id, command_id, status, actor, note in changes[
                    start : start + _JSON_ROWS
                ]
            ]
            await connection.execute(_SQLITE_INSERT, {"rows": json.dumps(rows), "at": at})
        return
    rows_ = [
        {"tenant_id": t, "command_id": c, "status": s, "at": at, "actor": a[:254], "note": n[:255]}
        for t, c, s, a, n in changes
    ]
    for start in range(0, len(rows_), 1000):
        await connection.execute(_INSERT, rows_[start : start + 1000])


_INSERT = insert(cast(Table, CommandTransition.__table__))
_JSON_ROWS = 5000
# SQLite keeps a UUID as 32 hex digits (SQLAlchemy's Uuid).
_SQLITE_INSERT = text(
    """
    INSERT INTO command_transitions (tenant_id, command_id, status, at, actor, note)
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
        json_extract(value, '$[2]'), :at, json_extract(value, '$[3]'), json_extract(value, '$[4]')
    FROM json_each(:rows)
    """
).bindparams(bindparam("at", type_=UTCDateTime))


async def history(session: AsyncSession, command_id: uuid.UUID) -> list[CommandTransition]:
    rows = await session.scalars(
        select(CommandTransition)
        .where(CommandTransition.command_id == command_id)
        .order_by(CommandTransition.id)
    )
    return list(rows)
