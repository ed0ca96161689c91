"""The tenant's audit log over HTTP: list with filters, export, chain check (`audit.view`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.service import Principal
from steward.server.audit import query
from steward.server.audit.query import AuditFilter, ExportFormat, Result, Risk
from steward.server.audit.schemas import AuditEventPage, AuditEventPublic, ChainReport
from steward.server.audit.verify import verify_chain
from steward.server.db.base import utcnow
from steward.server.deps import SessionDep, require

Viewer = Annotated[Principal, require(P.AUDIT_VIEW)]

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def audit_filter(
    since: Annotated[datetime | None, Query(description="from this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (ISO 8601)")] = None,
    actor: Annotated[
        str | None, Query(max_length=254, description="actor or actor name contains")
    ] = None,
    action: Annotated[
        str | None,
        Query(max_length=64, description='exact, or a prefix ending in "." or "*"'),
    ] = None,
    device_id: uuid.UUID | None = None,
    result: Result | None = None,
    risk: Risk | None = None,
) -> AuditFilter:
    return AuditFilter(
        since=_utc(since),
        until=_utc(until),
        actor=actor or None,
        action=action or None,
        device_id=device_id,
        result=result,
        risk=risk,
    )


Filters = Annotated[AuditFilter, Depends(audit_filter)]


@router.get("/events", response_model=AuditEventPage)
async def list_events(
    principal: Viewer,
    session: SessionDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=query.MAX_PAGE)] = query.DEFAULT_PAGE,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
) -> AuditEventPage:
    """The tenant's events, newest first. Follow `next_before_seq` for older ones."""
    found = await query.list_events(session, filters, limit=limit, before_seq=before_seq)
    return AuditEventPage(
        events=[AuditEventPublic.model_validate(e) for e in found.events],
        next_before_seq=found.next_before_seq,
    )


@router.get("/export")
async def export_events(
    principal: Viewer,
    session: SessionDep,
    filters: Filters,
    format: ExportFormat = ExportFormat.JSONL,
) -> StreamingResponse:
    """Every matching event in chain order, as JSON lines or CSV, streamed."""
    return export_response(session, filters, format)


def export_response(
    session: AsyncSession, filters: AuditFilter, format: ExportFormat
) -> StreamingResponse:
    """A download of the matching events (shared with the console's export links)."""
    media = "text/csv" if format is ExportFormat.CSV else "application/x-ndjson"
    name = f"audit-{utcnow():%Y%m%d-%H%M%S}.{format.value}"
    return StreamingResponse(
        query.export_lines(session, filters, format),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/verify", response_model=ChainReport)
async def verify(principal: Viewer, session: SessionDep) -> ChainReport:
    """Recompute the tenant's chain and report the first problem, if any."""
    report = await verify_chain(session, principal.tenant_id)
    return ChainReport(
        ok=report.ok,
        checked=report.checked,
        first_bad_seq=report.first_bad_seq,
        event_id=report.event_id,
        kind=report.kind.value if report.kind else None,
        message=report.message,
    )
