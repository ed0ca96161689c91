"""Recording events. Each record is its own transaction, so a refused request keeps it.

Events of one tenant form a hash chain (audit/chain.py). Appends are serialised per tenant:
by an in-process lock, and on PostgreSQL by locking the tenant's `audit_heads` row, so that
replicas append one after the other; `(tenant_id, seq)` is unique as the last guard.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit import forward
from steward.server.audit.chain import GENESIS, entry_hash, json_safe
from steward.server.audit.models import AuditEvent, AuditHead
from steward.server.db.base import utcnow

log = logging.getLogger(__name__)

_locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()
_ATTEMPTS = 5
T = TypeVar("T")


def _lock_for(tenant_id: uuid.UUID) -> asyncio.Lock:
    lock = _locks.get(tenant_id)
    if lock is None:
        lock = asyncio.Lock()
        _locks[tenant_id] = lock
    return lock


async def record(
    system_sessions: async_sessionmaker[AsyncSession],
    *,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    result: str,
    actor_name: str = "",
    address: str = "",
    user_agent: str = "",
    target: str = "",
    device_id: uuid.UUID | None = None,
    risk: str = "low",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to `tenant_id`'s chain and commit it."""
    log.info("audit %s %s by %s from %s: %s", action, result, actor, address, detail or {})
    values = _values(
        tenant_id,
        actor=actor,
        action=action,
        result=result,
        actor_name=actor_name,
        address=address,
        user_agent=user_agent,
        target=target,
        device_id=device_id,
        risk=risk,
        detail=detail,
    )
    event = await _appending(system_sessions, tenant_id, lambda s: _append(s, values))
    forward.submit(event)  # a copy off the server, if configured; never blocks
    return event


async def record_many(
    system_sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    events: Sequence[dict[str, Any]],
) -> int:
    """Append many events of one tenant in one transaction (each a dict of `record`'s keyword
    arguments except `tenant_id`), chained in order. For bursts such as a bulk job's results."""
    if not events:
        return 0
    log.info("audit %d events, first %s", len(events), events[0].get("action"))
    rows = [_values(tenant_id, **event) for event in events]
    written = await _appending(
        system_sessions, tenant_id, lambda s: _append_many(s, tenant_id, rows)
    )
    if forward.installed() is not None:
        for row in written:
            forward.submit(AuditEvent(**row))
    return len(written)


async def _appending(
    system_sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    append: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """Run `append` in its own transaction, one tenant's appends at a time; again when another
    replica appended (or created the head) at the same moment."""
    async with _lock_for(tenant_id):
        for attempt in range(_ATTEMPTS):
            try:
                async with system_sessions() as session:
                    appended = await append(session)
                    await session.commit()
                    return appended
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _values(
    tenant_id: uuid.UUID,
    *,
    actor: str,
    action: str,
    result: str,
    actor_name: str = "",
    address: str = "",
    user_agent: str = "",
    target: str = "",
    device_id: uuid.UUID | None = None,
    risk: str = "low",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "actor": actor[:200],
        "actor_name": actor_name[:254],
        "action": action[:64],
        "result": result,
        "address": address[:64],
        "user_agent": user_agent[:300],
        "target": target[:200],
        "device_id": device_id,
        "risk": risk,
        "detail": json_safe(detail),
    }


async def _append_many(
    session: AsyncSession, tenant_id: uuid.UUID, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    head = await _head(session, tenant_id)
    at = utcnow()
    seq, prev = head.seq, head.hash
    written = []
    for values in rows:
        seq += 1
        digest = entry_hash(prev_hash=prev, seq=seq, at=at, **values)
        written.append(values | {"seq": seq, "at": at, "prev_hash": prev, "hash": digest})
        prev = digest
    connection = await session.connection()
    await connection.execute(insert(cast(Table, AuditEvent.__table__)), written)
    head.seq, head.hash, head.updated_at = seq, prev, at
    await session.flush()
    return written


async def _head(session: AsyncSession, tenant_id: uuid.UUID) -> AuditHead:
    head = await session.scalar(
        select(AuditHead).where(AuditHead.tenant_id == tenant_id).with_for_update()
    )
    if head is None:
        head = AuditHead(tenant_id=tenant_id, seq=0, hash=GENESIS)
        session.add(head)
        await session.flush()
    return head


async def _append(session: AsyncSession, values: dict[str, Any]) -> AuditEvent:
    head = await _head(session, values["tenant_id"])
    at = utcnow()
    seq = head.seq + 1
    digest = entry_hash(prev_hash=head.hash, seq=seq, at=at, **values)
    event = AuditEvent(seq=seq, at=at, prev_hash=head.hash, hash=digest, **values)
    session.add(event)
    head.seq, head.hash, head.updated_at = seq, digest, at
    await session.flush()
    return event
