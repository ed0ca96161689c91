"""Reading a tenant's audit log: filters, keyset pages (newest first) and streamed exports.

Every function here takes a session bound to one tenant: the tenant filter adds the tenant, so
no query names it, and a session without a tenant context is refused (a system session would
otherwise read every tenant's log).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.audit.chain import canonical_time
from steward.server.audit.models import AuditEvent
from steward.server.db.tenant_filter import TenantContextMissing, bound_tenant

MAX_PAGE = 500
DEFAULT_PAGE = 100
EXPORT_BATCH = 1000
# Cells a spreadsheet would read as a formula (CSV injection), and what makes them text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Result(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    BLOCKED = "blocked"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None  # substring of actor or actor_name, any case
    action: str | None = None  # exact, or a prefix when it ends with "." or "*"
    device_id: uuid.UUID | None = None
    result: Result | None = None
    risk: Risk | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.since is not None:
            found.append(AuditEvent.at >= self.since)
        if self.until is not None:
            found.append(AuditEvent.at < self.until)
        if self.actor:
            needle = self.actor.lower()
            found.append(
                or_(
                    func.lower(AuditEvent.actor).contains(needle, autoescape=True),
                    func.lower(AuditEvent.actor_name).contains(needle, autoescape=True),
                )
            )
        if self.action:
            if self.action.endswith(("*", ".")):
                prefix = self.action.rstrip("*")
                found.append(AuditEvent.action.startswith(prefix, autoescape=True))
            else:
                found.append(AuditEvent.action == self.action)
        if self.device_id is not None:
            found.append(AuditEvent.device_id == self.device_id)
        if self.result is not None:
            found.append(AuditEvent.result == self.result.value)
        if self.risk is not None:
            found.append(AuditEvent.risk == self.risk.value)
        return found


@dataclass(frozen=True)
class EventPage:
    events: Sequence[AuditEvent]
    next_before_seq: int | None  # pass as `before_seq` for the next (older) page


def _tenant_bound(session: AsyncSession) -> None:
    if bound_tenant(session) is None:
        raise TenantContextMissing("the audit log is read through a tenant-bound session")


def _filtered(filters: AuditFilter) -> Select[AuditEvent]:
    return select(AuditEvent).where(*filters.conditions())


async def list_events(
    session: AsyncSession,
    filters: AuditFilter,
    *,
    limit: int = DEFAULT_PAGE,
    before_seq: int | None = None,
) -> EventPage:
    """One page of the tenant's events, newest first, older than `before_seq` when given."""
    _tenant_bound(session)
    limit = max(1, min(limit, MAX_PAGE))
    query = _filtered(filters)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    rows = (await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1))).all()
    events = rows[:limit]
    more = len(rows) > limit
    return EventPage(events, events[-1].seq if more and events else None)


async def iter_events(
    session: AsyncSession, filters: AuditFilter, *, batch: int = EXPORT_BATCH
) -> AsyncIterator[AuditEvent]:
    """Every matching event in chain order (oldest first), read in batches."""
    _tenant_bound(session)
    after = 0
    while True:
        query = _filtered(filters).where(AuditEvent.seq > after)
        rows = (await session.scalars(query.order_by(AuditEvent.seq).limit(batch))).all()
        for event in rows:
            yield event
        if len(rows) < batch:
            return
        after = rows[-1].seq
        session.expunge_all()  # a long export does not keep what it already sent


EXPORT_FIELDS = (
    "seq",
    "at",
    "actor",
    "actor_name",
    "address",
    "user_agent",
    "action",
    "target",
    "device_id",
    "result",
    "risk",
    "detail",
    "prev_hash",
    "hash",
)


def event_record(event: AuditEvent) -> dict[str, Any]:
    """An event as exported: what its hash covers, plus the hashes (so a copy can be checked)."""
    return {
        "id": event.id,
        "seq": event.seq,
        "at": canonical_time(event.at),
        "actor": event.actor,
        "actor_name": event.actor_name,
        "address": event.address,
        "user_agent": event.user_agent,
        "action": event.action,
        "target": event.target,
        "device_id": str(event.device_id) if event.device_id else None,
        "result": event.result,
        "risk": event.risk,
        "detail": event.detail or {},
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def csv_safe(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _csv_line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_safe(cell) for cell in cells])
    return buffer.getvalue()


async def export_lines(
    session: AsyncSession, filters: AuditFilter, export_format: ExportFormat
) -> AsyncIterator[str]:
    """The matching events as JSON lines or CSV (with a header row), one line at a time."""
    if export_format is ExportFormat.CSV:
        yield _csv_line(EXPORT_FIELDS)
    async for event in iter_events(session, filters):
        record = event_record(event)
        if export_format is ExportFormat.JSONL:
            yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            continue
        record["detail"] = json.dumps(record["detail"], ensure_ascii=False, sort_keys=True)
        yield _csv_line(["" if record[k] is None else str(record[k]) for k in EXPORT_FIELDS])
