"""Retention: the oldest entries of a tenant's log go to an archive file, then leave the table.

The archive is written (and flushed to disk) first; only then are the rows deleted, in one
transaction that moves the chain's base (`AuditHead.base_seq/base_hash`) to the last archived
entry, so `verify` goes on checking what is left. The archive keeps every field and both hashes
of each entry: its lines chain to each other exactly as they did in the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.audit.models import AuditEvent, AuditHead
from steward.server.audit.query import event_record

BATCH = 1000


@dataclass(frozen=True, slots=True)
class Archived:
    count: int
    up_to_seq: int
    sha256: str  # of the archive file's bytes


async def archive_before(
    session: AsyncSession, tenant_id: uuid.UUID, before: datetime, out: BinaryIO
) -> Archived:
    """Write the tenant's entries older than `before` to `out` as JSON lines, then remove
    them (a system session; commits). Nothing is removed unless all were written."""
    head = await session.scalar(
        select(AuditHead).where(AuditHead.tenant_id == tenant_id).with_for_update()
    )
    if head is None:
        return Archived(0, 0, hashlib.sha256().hexdigest())
    digest = hashlib.sha256()
    count, last_seq, last_hash = 0, head.base_seq, head.base_hash
    while True:
        rows = (
            await session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == tenant_id,
                    AuditEvent.seq > last_seq,
                    AuditEvent.at < before,
                )
                .order_by(AuditEvent.seq)
                .limit(BATCH)
            )
        ).all()
        for event in rows:
            if event.seq != last_seq + 1:  # a gap: stop here rather than archive around it
                rows = []
                break
            line = json.dumps(event_record(event), ensure_ascii=False, separators=(",", ":"))
            data = (line + "\n").encode()
            out.write(data)
            digest.update(data)
            count, last_seq, last_hash = count + 1, event.seq, event.hash
        if len(rows) < BATCH:
            break
    if count == 0:
        return Archived(0, head.base_seq, digest.hexdigest())
    out.flush()
    if hasattr(out, "fileno"):
        os.fsync(out.fileno())
    if session.get_bind().dialect.name == "postgresql":
        # The append-only trigger lets this transaction delete (and no other).
        await session.execute(text("SELECT set_config('steward.audit_purge', 'on', true)"))
    await session.execute(
        delete(AuditEvent).where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq <= last_seq)
    )
    head.base_seq, head.base_hash = last_seq, last_hash
    await session.commit()
    return Archived(count, last_seq, digest.hexdigest())
