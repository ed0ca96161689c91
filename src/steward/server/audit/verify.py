"""Checking a tenant's audit chain: every hash recomputed, every link and the head compared.

The walk streams the events in `seq` order in batches, so a long log never sits in memory, and
stops at the first problem, saying where it is and what it looks like:

- `edited`: a row's content no longer matches its hash (or it was replaced by one whose hash
  was recomputed, and the next row's link gives it away);
- `missing`: a gap in `seq`, or a row that links to an entry that is no longer there;
- `reordered`: a row sits where another belongs (the entry it links to comes later);
- `truncated`: the head (the newest entry recorded at append time) is past the last row, or is
  missing while rows exist: rows were cut off the end.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.audit.chain import GENESIS, entry_hash
from steward.server.audit.models import AuditEvent, AuditHead
from steward.server.tenancy.models import Tenant

BATCH = 1000

_COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.actor_name,
    AuditEvent.address,
    AuditEvent.user_agent,
    AuditEvent.action,
    AuditEvent.target,
    AuditEvent.device_id,
    AuditEvent.result,
    AuditEvent.risk,
    AuditEvent.detail,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


class Breach(StrEnum):
    EDITED = "edited"
    MISSING = "missing"
    REORDERED = "reordered"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class VerifyReport:
    tenant_id: uuid.UUID
    ok: bool
    checked: int  # rows whose hash and link were found intact
    first_bad_seq: int | None = None
    event_id: int | None = None  # the row where the problem shows, when there is one
    kind: Breach | None = None
    message: str = ""


def _recompute(tenant_id: uuid.UUID, row: Row[Any]) -> str:
    return entry_hash(
        prev_hash=row.prev_hash,
        tenant_id=tenant_id,
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        actor_name=row.actor_name,
        address=row.address,
        user_agent=row.user_agent,
        action=row.action,
        target=row.target,
        device_id=row.device_id,
        result=row.result,
        risk=row.risk,
        detail=row.detail or {},
    )


async def _later_seq_with_hash(
    session: AsyncSession, tenant_id: uuid.UUID, after_seq: int, digest: str
) -> int | None:
    """Where the entry with this hash sits, if after `after_seq` (only asked once a link broke)."""
    found = await session.scalar(
        select(AuditEvent.seq)
        .where(
            AuditEvent.tenant_id == tenant_id,
            AuditEvent.seq > after_seq,
            AuditEvent.hash == digest,
        )
        .limit(1)
    )
    return int(found) if found is not None else None


async def verify_chain(session: AsyncSession, tenant_id: uuid.UUID) -> VerifyReport:
    """Walk `tenant_id`'s events in chain order and report the first problem, if any."""

    def broken(
        kind: Breach, seq: int | None, message: str, event_id: int | None = None
    ) -> VerifyReport:
        return VerifyReport(tenant_id, False, checked, seq, event_id, kind, message)

    checked = 0
    # After retention the chain starts where the archive ended (audit/retention.py).
    base = (
        await session.execute(
            select(AuditHead.base_seq, AuditHead.base_hash).where(AuditHead.tenant_id == tenant_id)
        )
    ).first()
    base_seq, base_hash = (base.base_seq, base.base_hash) if base is not None else (0, GENESIS)
    last_seq, last_hash = base_seq, base_hash
    while True:
        batch = (
            await session.execute(
                select(*_COLUMNS)
                .where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq > last_seq)
                .order_by(AuditEvent.seq, AuditEvent.id)
                .limit(BATCH)
            )
        ).all()
        for row in batch:
            expected = last_seq + 1
            if row.seq != expected:
                gap = f"#{expected}" if row.seq == expected + 1 else f"#{expected}-#{row.seq - 1}"
                return broken(
                    Breach.MISSING,
                    expected,
                    f"entry {gap} missing (the next entry is #{row.seq}, id {row.id})",
                    row.id,
                )
            intact = _recompute(tenant_id, row) == row.hash
            if row.prev_hash != last_hash:
                moved = await _later_seq_with_hash(session, tenant_id, row.seq, row.prev_hash)
                if moved is not None:
                    return broken(
                        Breach.REORDERED,
                        row.seq,
                        f"entry #{row.seq} (id {row.id}) is out of order: the entry it follows "
                        f"now sits at #{moved}",
                        row.id,
                    )
                if intact and row.seq > base_seq + 1:
                    return broken(
                        Breach.EDITED,
                        row.seq - 1,
                        f"entry #{row.seq - 1} is not the one entry #{row.seq} (id {row.id}) "
                        "was chained to: it was replaced, or entries were removed and renumbered",
                        row.id,
                    )
                if intact:
                    return broken(
                        Breach.MISSING,
                        row.seq,
                        f"entry #{row.seq} (id {row.id}) links to an entry that is not there",
                        row.id,
                    )
            if not intact:
                return broken(
                    Breach.EDITED,
                    row.seq,
                    f"entry #{row.seq} (id {row.id}) was changed after it was written: "
                    "its hash does not match its content",
                    row.id,
                )
            checked += 1
            last_seq, last_hash = row.seq, row.hash
        if len(batch) < BATCH:
            break

    head = (
        await session.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.tenant_id == tenant_id)
        )
    ).first()
    if head is None:
        if checked:
            return broken(
                Breach.TRUNCATED,
                None,
                f"the chain's head is missing while {checked} entries exist: "
                "entries may have been cut off the end",
            )
    elif head.seq > last_seq:
        first = last_seq + 1
        span = f"#{first}" if head.seq == first else f"#{first}-#{head.seq}"
        return broken(
            Breach.TRUNCATED,
            first,
            f"entries {span} were cut off the end (the head is at #{head.seq}, "
            f"the last entry is #{last_seq})",
        )
    elif head.seq < last_seq:
        return broken(
            Breach.EDITED,
            head.seq + 1,
            f"entries after #{head.seq} were not appended by Steward (the head is at "
            f"#{head.seq}, the last entry is #{last_seq})",
        )
    elif head.hash != last_hash:
        return broken(
            Breach.EDITED,
            last_seq,
            f"entry #{last_seq} is not the one the head recorded: it was replaced",
        )
    return VerifyReport(tenant_id, True, checked)


async def verify_all(session: AsyncSession) -> list[tuple[Tenant, VerifyReport]]:
    """Every tenant's chain (a system session), in slug order."""
    tenants = (await session.scalars(select(Tenant).order_by(Tenant.slug))).all()
    return [(tenant, await verify_chain(session, tenant.id)) for tenant in tenants]
