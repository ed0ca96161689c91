"""Jobs in the console: the list, one job's page (progress, devices, approvals) with cancel and
approve/deny, and a device's tags. The composer (`jobs_composer.py`) and the schedules
(`jobs_schedules.py`) are included here, so the console mounts one router.

Handlers call what the API routes call (jobs/service.py, jobs/listing.py,
commands/approvals.py) and audit the same actions.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts.permissions import Permission as P
from steward.server.commands import approvals
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.devices.access import device_for
from steward.server.errors import Conflict
from steward.server.jobs import listing, service, targets
from steward.server.jobs.schemas import JobStatus
from steward.server.web import jobs_composer, jobs_schedules
from steward.server.web.account import page_auditor
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]
Runner = Annotated[Page, require_page(P.COMMAND_RUN)]
Approver = Annotated[Page, require_page(P.COMMAND_APPROVE)]
Manager = Annotated[Page, require_page(P.DEVICE_MANAGE)]
Comment = Annotated[str, Form(max_length=1000)]
# `?page=` of a job's devices (100 a page: a job may have 20,000)
PageNumber = Annotated[int, Query(alias="page", ge=1, le=1_000_000)]
DEVICES_PAGE = listing.JOB_DEVICES_PAGE

router = APIRouter(route_class=PageRoute, include_in_schema=False)
router.include_router(jobs_composer.router)
router.include_router(jobs_schedules.router)

# The order of the progress bar, and the colour of each part.
PROGRESS = (
    ("succeeded", "success"),
    ("failed", "danger"),
    ("timed_out", "warning"),
    ("cancelled", "secondary"),
    ("expired", "secondary"),
    ("denied", "dark"),
    ("running", "primary"),
    ("sent", "info"),
    ("queued", "info"),
    ("held", "light"),
    ("pending_approval", "warning"),
)


@router.get("/jobs")
async def job_list(
    page: Viewer, session: SessionDep, status: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    chosen = JobStatus(status) if status in set(JobStatus) else None
    jobs = await listing.list_jobs(session, page.me, status=chosen, limit=100)
    return page.render(
        "jobs/list.html", jobs=jobs, status=chosen.value if chosen else "", statuses=list(JobStatus)
    )


async def _detail(
    page: Page, session: SessionDep, job_id: uuid.UUID, page_number: int
) -> dict[str, Any]:
    job = await service.job_for(session, page.me, job_id)
    offset = (page_number - 1) * DEVICES_PAGE
    detail = await listing.job_detail(session, page.me, job, limit=DEVICES_PAGE, offset=offset)
    pages = max(1, math.ceil(detail.commands_total / DEVICES_PAGE))
    approved = sum(1 for a in detail.approvals if a.decision == "approve")
    return {
        "job": detail,
        "page_number": page_number,
        "pages": pages,
        "first_row": offset + 1 if detail.commands else 0,
        "last_row": offset + len(detail.commands),
        "page_query": lambda n: f"?page={n}" if n > 1 else "",
        "final": detail.status.is_final,
        "progress": PROGRESS,
        "done": sum(n for s, n in detail.counts.items() if s in _FINISHED),
        "approved": approved,
        "decided": any(a.approver == page.me.email for a in detail.approvals),
    }


_FINISHED = {"succeeded", "failed", "timed_out", "cancelled", "expired", "denied"}


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: uuid.UUID, page: Viewer, session: SessionDep, page_number: PageNumber = 1
) -> Response:
    return page.render("jobs/page.html", **await _detail(page, session, job_id, page_number))


@router.get("/jobs/{job_id}/progress")
async def job_progress(
    job_id: uuid.UUID, page: Viewer, session: SessionDep, page_number: PageNumber = 1
) -> Response:
    """The part of the job page that refreshes (every 2 s while the job is not finished)."""
    context = await _detail(page, session, job_id, page_number)
    return page.render("jobs/_progress.html", **context)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(
    job_id: uuid.UUID, page: Runner, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """As POST /api/v1/jobs/{id}/cancel; a job already finished stays as it is."""
    try:
        job, agents = await service.cancel_job(session, page.me, job_id)
    except Conflict:
        await session.rollback()
        return RedirectResponse(f"/jobs/{job_id}", status_code=303)
    await session.commit()
    await page_auditor(page, runtime)("job.cancelled", target=f"job:{job.id}", risk="medium")
    for device_id in agents:
        await runtime.hub.notify_cancel(device_id)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


async def _decide(
    page: Page, session: SessionDep, runtime: RuntimeDep, job_id: uuid.UUID, *, approve: bool,
    comment: str, back: str,
) -> Response:  # fmt: skip
    auditor = page_auditor(page, runtime)
    await approvals.decide_job(
        session, runtime, auditor, page.me, job_id, approve=approve, comment=comment.strip()
    )
    target = "/approvals" if back == "inbox" else f"/jobs/{job_id}"
    return RedirectResponse(target, status_code=303)


@router.post("/jobs/{job_id}/approve")
async def approve_job(
    job_id: uuid.UUID, page: Approver, session: SessionDep, runtime: RuntimeDep,
    comment: Comment = "", back: Annotated[str, Form(max_length=16)] = "",
) -> Response:  # fmt: skip
    """Approve a job waiting for approval (never one's own; fresh MFA where asked)."""
    return await _decide(page, session, runtime, job_id, approve=True, comment=comment, back=back)


@router.post("/jobs/{job_id}/deny")
async def deny_job(
    job_id: uuid.UUID, page: Approver, session: SessionDep, runtime: RuntimeDep,
    comment: Comment = "", back: Annotated[str, Form(max_length=16)] = "",
) -> Response:  # fmt: skip
    return await _decide(page, session, runtime, job_id, approve=False, comment=comment, back=back)


# ---- device tags -----------------------------------------------------------------------------


async def _tags(
    page: Page, session: SessionDep, device_id: uuid.UUID, *, error: str = "", status: int = 200
) -> Response:
    await device_for(session, page.me, P.DEVICE_VIEW, device_id)
    tags = await targets.tags_of(session, device_id)
    return page.render(
        "jobs/_tags.html", status_code=status, tags=tags, device_id=device_id, error=error
    )


@router.get("/devices/{device_id}/tags")
async def device_tags(device_id: uuid.UUID, page: Viewer, session: SessionDep) -> Response:
    """The tags card of the device page (loaded into it)."""
    return await _tags(page, session, device_id)


@router.post("/devices/{device_id}/tags")
async def set_device_tags(
    device_id: uuid.UUID, page: Manager, session: SessionDep, runtime: RuntimeDep,
    tags: Annotated[str, Form(max_length=4000)] = "",
) -> Response:  # fmt: skip
    """Replace the device's tags (as PUT /api/v1/devices/{id}/tags)."""
    device = await device_for(session, page.me, P.DEVICE_MANAGE, device_id)
    words = [word for word in tags.replace(",", " ").split() if word]
    try:
        if len(words) > 50:
            raise ValueError("at most 50 tags")
        saved = await targets.set_tags(session, device, words)
    except ValueError as exc:
        await session.rollback()
        message = page.gettext("Check the values: %(details)s", details=str(exc))
        return await _tags(page, session, device_id, error=message, status=422)
    await session.commit()
    await page_auditor(page, runtime)("device.tags", target=f"device:{device_id}",
                                      device_id=device_id, detail={"tags": saved})  # fmt: skip
    if page.is_htmx:
        return await _tags(page, session, device_id)
    return RedirectResponse(f"/devices/{device_id}", status_code=303)
