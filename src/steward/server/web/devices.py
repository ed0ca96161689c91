"""Device pages: the fleet list (with its self-refreshing table) and one device's page."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission as P
from steward.server.commands.service import list_device_commands
from steward.server.db.base import utcnow
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.devices import service
from steward.server.devices.schemas import DeviceDetail, DeviceSort
from steward.server.tenancy.groups import list_groups
from steward.server.web.page import Page, PageRoute, require_page

Viewer = Annotated[Page, require_page(P.DEVICE_VIEW)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)
# JSON for the page's scripts: errors stay JSON (the app's handlers), not redirects.
data_router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
RECENT_COMMANDS = 10
Search = Annotated[str, Query(max_length=255)]
# One of `DeviceSort` (the API's allow-list); anything else shows the default order.
Sort = Annotated[str, Query(max_length=16)]
# `?page=` in URLs; `page` in the handlers is the page context.
PageNumber = Annotated[int, Query(alias="page", ge=1, le=1_000_000)]


def _query(q: str, page_number: int, sort: DeviceSort = DeviceSort.HOSTNAME) -> str:
    params: dict[str, str | int] = {}
    if q:
        params["q"] = q
    if sort is not DeviceSort.HOSTNAME:
        params["sort"] = sort.value
    if page_number > 1:
        params["page"] = page_number
    return f"?{urlencode(params)}" if params else ""


async def _table(
    page: Page, session: AsyncSession, q: str, page_number: int, sort_name: str
) -> dict[str, Any]:
    search = q.strip() or None
    sort = DeviceSort(sort_name) if sort_name in set(DeviceSort) else DeviceSort.HOSTNAME
    devices, total = await service.list_devices(
        session, page.me, search=search, sort=sort, limit=PAGE_SIZE,
        offset=(page_number - 1) * PAGE_SIZE,
    )  # fmt: skip
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page_number > pages:  # the fleet shrank under a later page: show the last one
        page_number = pages
        devices, total = await service.list_devices(
            session, page.me, search=search, sort=sort, limit=PAGE_SIZE,
            offset=(page_number - 1) * PAGE_SIZE,
        )  # fmt: skip
    return {
        "devices": devices,
        "total": total,
        "counts": await service.device_counts(session, page.me),
        "q": q,
        "page_number": page_number,
        "pages": pages,
        "first_row": (page_number - 1) * PAGE_SIZE + 1 if total else 0,
        "last_row": (page_number - 1) * PAGE_SIZE + len(devices),
        "sort": sort.value,
        "list_url": lambda n: f"/devices{_query(q, n, sort)}",
        "table_url": lambda n: f"/devices/table{_query(q, n, sort)}",
        # a column's header: sort by it, or the other way round when it is the order already
        "sort_url": lambda column: f"/devices{_query(q, 1, _toggled(sort, column))}",
    }


def _toggled(current: DeviceSort, column: str) -> DeviceSort:
    return DeviceSort(f"-{column}") if current.value == column else DeviceSort(column)


@router.get("/devices")
async def device_list(
    page: Viewer, session: SessionDep, q: Search = "", page_number: PageNumber = 1, sort: Sort = ""
) -> Response:
    context = await _table(page, session, q, page_number, sort)
    return page.render("devices/list.html", **context)


@router.get("/devices/table")
async def device_table(
    page: Viewer, session: SessionDep, q: Search = "", page_number: PageNumber = 1, sort: Sort = ""
) -> Response:
    context = await _table(page, session, q, page_number, sort)
    # Keep the address bar in step with the search and page, without new history entries.
    headers = {"HX-Replace-Url": context["list_url"](context["page_number"])}
    return page.render("devices/_table.html", headers=headers, **context)


@dataclass(frozen=True, slots=True)
class DiskView:
    mountpoint: str
    fstype: str
    total_bytes: int
    used_bytes: int

    @property
    def percent(self) -> float:
        return min(100.0, 100.0 * self.used_bytes / self.total_bytes) if self.total_bytes else 0.0


@dataclass(frozen=True, slots=True)
class ProcessView:
    pid: int
    name: str
    cpu_percent: float
    memory_bytes: int


def _float(value: object) -> float:
    """A number from agent-sent JSON, or 0 for anything else."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return 0.0


def _disks(device: DeviceDetail) -> list[DiskView]:
    return [
        DiskView(
            mountpoint=str(d.get("mountpoint", "")),
            fstype=str(d.get("fstype", "")),
            total_bytes=int(_float(d.get("total_bytes"))),
            used_bytes=int(_float(d.get("used_bytes"))),
        )
        for d in device.disks
        if isinstance(d, dict)
    ]


def _processes(device: DeviceDetail) -> list[ProcessView]:
    return [
        ProcessView(
            pid=int(_float(p.get("pid"))),
            name=str(p.get("name", "")),
            cpu_percent=_float(p.get("cpu_percent")),
            memory_bytes=int(_float(p.get("memory_bytes"))),
        )
        for p in device.top_processes
        if isinstance(p, dict)
    ]


@router.get("/devices/{device_id}")
async def device_page(
    device_id: uuid.UUID, page: Viewer, session: SessionDep, runtime: RuntimeDep
) -> Response:
    device = await service.get_device(session, page.me, device_id)
    commands = await list_device_commands(session, page.me, device_id, limit=RECENT_COMMANDS)
    await runtime.hub.watch(device_id)
    groups: list[str] = []
    if page.principal is not None and page.can(P.DEVICE_MANAGE):
        summaries = await list_groups(session, page.principal.tenant_id)
        groups = [summary.group.name for summary in summaries]
    return page.render(
        "devices/detail.html",
        groups=groups,
        device=device,
        disks=_disks(device),
        processes=_processes(device),
        commands=commands,
        device_id=device_id,
    )


@router.get("/devices/{device_id}/status")
async def device_status(
    device_id: uuid.UUID, page: Viewer, session: SessionDep, runtime: RuntimeDep
) -> Response:
    device = await service.get_device(session, page.me, device_id)
    # Each refresh says "someone is looking": the agent keeps its 2-second heartbeats.
    await runtime.hub.watch(device_id)
    return page.render("devices/_status.html", device=device)


@data_router.get("/devices/{device_id}/metrics.json")
async def device_metrics(
    device_id: uuid.UUID,
    page: Viewer,
    session: SessionDep,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
) -> JSONResponse:
    since = utcnow() - timedelta(minutes=minutes)
    points = await service.recent_metrics(session, page.me, device_id, since)
    return JSONResponse(
        [p.model_dump(mode="json") for p in points], headers={"Cache-Control": "no-store"}
    )
