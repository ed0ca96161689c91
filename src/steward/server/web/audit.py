"""The audit log page: events newest first with filters, the chain's state, and exports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from steward.server.accounts.permissions import Permission as P
from steward.server.audit import query
from steward.server.audit.query import AuditFilter, ExportFormat, Result, Risk
from steward.server.audit.routes import export_response
from steward.server.audit.verify import verify_chain
from steward.server.deps import SessionDep
from steward.server.errors import InvalidInput
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.AUDIT_VIEW)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
# The form's datetime-local inputs: minutes, in the tenant's time zone.
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
Text = Annotated[str, Query(max_length=254)]


@dataclass(frozen=True)
class FilterForm:
    """What the filter form sent, as typed (kept for the form and the links)."""

    since: str = ""
    until: str = ""
    actor: str = ""
    action: str = ""
    device: str = ""
    result: str = ""
    risk: str = ""

    def params(self, **extra: str | int) -> str:
        values: dict[str, str | int] = {k: v for k, v in vars(self).items() if v}
        values.update({k: v for k, v in extra.items() if v})
        return urlencode(values)


async def filter_form(
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    actor: Text = "",
    action: Annotated[str, Query(max_length=64)] = "",
    device: Annotated[str, Query(max_length=64)] = "",
    result: Annotated[str, Query(max_length=16)] = "",
    risk: Annotated[str, Query(max_length=16)] = "",
) -> FilterForm:
    return FilterForm(
        since.strip(),
        until.strip(),
        actor.strip(),
        action.strip(),
        device.strip(),
        result.strip(),
        risk.strip(),
    )


Form = Annotated[FilterForm, Depends(filter_form)]


def _local_time(value: str, page: Page) -> datetime | None:
    if not value:
        return None
    for fmt in _LOCAL_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=page.tz).astimezone(UTC)
        except ValueError:
            continue
    raise InvalidInput(code="invalid_time")


def to_filter(form: FilterForm, page: Page) -> AuditFilter:
    """The form's values checked; anything not valid is a 422 page."""
    try:
        device_id = uuid.UUID(form.device) if form.device else None
        result = Result(form.result) if form.result else None
        risk = Risk(form.risk) if form.risk else None
    except ValueError:
        raise InvalidInput() from None
    return AuditFilter(
        since=_local_time(form.since, page),
        until=_local_time(form.until, page),
        actor=form.actor or None,
        action=form.action or None,
        device_id=device_id,
        result=result,
        risk=risk,
    )


@router.get("/audit")
async def audit_page(
    page: Viewer,
    session: SessionDep,
    form: Form,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    found = await query.list_events(
        session, to_filter(form, page), limit=PAGE_SIZE, before_seq=before
    )
    older = found.next_before_seq
    return page.render(
        "audit/list.html",
        events=found.events,
        form=form,
        results=[r.value for r in Result],
        risks=[r.value for r in Risk],
        is_first_page=before is None,
        newest_url=f"/audit?{form.params()}",
        older_url=f"/audit?{form.params(before=older)}" if older else None,
        export_url=lambda fmt: f"/audit/export?{form.params(format=fmt)}",
    )


@router.get("/audit/chain")
async def audit_chain(page: Viewer, session: SessionDep) -> Response:
    """The chain's state, loaded after the page (it reads every event)."""
    assert page.principal is not None  # require_page guarantees a signed-in user
    report = await verify_chain(session, page.principal.tenant_id)
    return page.render("audit/_chain.html", report=report)


@router.get("/audit/export")
async def audit_export(
    page: Viewer,
    session: SessionDep,
    form: Form,
    format: Annotated[ExportFormat, Query()] = ExportFormat.JSONL,
) -> Response:
    return export_response(session, to_filter(form, page), format)
