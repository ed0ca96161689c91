from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.service import Principal
from steward.server.db.base import utcnow
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.devices import enrollment, service
from steward.server.devices.schemas import (
    DeviceCounts,
    DeviceDetail,
    DevicePublic,
    DeviceSort,
    MetricPoint,
    PinCreate,
    PinCreated,
)
from steward.server.tenancy.service import get_tenant

Viewer = Annotated[Principal, require(P.DEVICE_VIEW)]

router = APIRouter(prefix="/api/v1", tags=["devices"])


@router.get("/devices", response_model=list[DevicePublic])
async def list_devices(
    principal: Viewer,
    session: SessionDep,
    response: Response,
    q: Annotated[str | None, Query(max_length=255, description="hostname contains")] = None,
    online: bool | None = None,
    group: Annotated[str | None, Query(max_length=100)] = None,
    sort: DeviceSort = DeviceSort.HOSTNAME,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[DevicePublic]:
    """A page of the devices you reach; the total that match is in `X-Total-Count`."""
    devices, total = await service.list_devices(
        session, principal, search=q, online=online, group=group, sort=sort, limit=limit,
        offset=offset,
    )  # fmt: skip
    response.headers["X-Total-Count"] = str(total)
    return devices


@router.get("/devices/counts", response_model=DeviceCounts)
async def device_counts(principal: Viewer, session: SessionDep) -> DeviceCounts:
    return await service.device_counts(session, principal)


@router.get("/devices/{device_id}", response_model=DeviceDetail)
async def get_device(
    device_id: uuid.UUID, principal: Viewer, session: SessionDep, runtime: RuntimeDep
) -> DeviceDetail:
    device = await service.get_device(session, principal, device_id)
    await runtime.hub.watch(device_id)
    held = await runtime.presence.replicas_of([device_id])
    return device.model_copy(update={"connected_to": held.get(device_id)})


@router.get("/devices/{device_id}/metrics", response_model=list[MetricPoint])
async def device_metrics(
    device_id: uuid.UUID,
    principal: Viewer,
    session: SessionDep,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
) -> list[MetricPoint]:
    since = utcnow() - timedelta(minutes=minutes)
    return await service.recent_metrics(session, principal, device_id, since)


@router.post("/enrollment/pins", response_model=PinCreated, status_code=201)
async def create_pin(
    body: PinCreate,
    principal: Annotated[Principal, require(P.AGENT_ENROLL)],
    auditor: AuditorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> PinCreated:
    tenant = await get_tenant(session, principal.tenant_id)
    pin, row, group = await enrollment.create_pin(
        session,
        runtime.settings.effective_secret_key,
        tenant,
        group_name=body.group,
        ttl_s=body.ttl_s or runtime.settings.pin_ttl_s,
        created_by=principal.email,
    )
    await session.commit()
    await auditor("pin.create", risk="medium", detail={"group": group.name, "pin_id": str(row.id)})
    return PinCreated(pin=pin, expires_at=row.expires_at, group=group.name)
