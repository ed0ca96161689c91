from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from steward.protocol import CommandStatus
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.service import Principal
from steward.server.commands import service
from steward.server.commands.schemas import CommandCreate, CommandCreated, CommandPublic
from steward.server.deps import RuntimeDep, SessionDep, require

Viewer = Annotated[Principal, require(P.DEVICE_VIEW)]

router = APIRouter(prefix="/api/v1", tags=["commands"])


@router.post("/devices/{device_id}/commands", response_model=CommandCreated, status_code=201)
async def create_command(
    device_id: uuid.UUID,
    body: CommandCreate,
    principal: Annotated[Principal, require(P.COMMAND_RUN)],
    session: SessionDep,
    runtime: RuntimeDep,
) -> CommandCreated:
    command = await service.create_command(
        session, principal, device_id, body, runtime.settings.command_timeout_s
    )
    await session.commit()  # committed before anyone is told
    await runtime.hub.notify_command(device_id)
    return CommandCreated(id=command.id, status=CommandStatus(command.status))


@router.get("/commands/{command_id}", response_model=CommandPublic)
async def get_command(
    command_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> CommandPublic:
    return await service.get_command(session, command_id)


@router.get("/devices/{device_id}/commands", response_model=list[CommandPublic])
async def list_device_commands(
    device_id: uuid.UUID, principal: Viewer, session: SessionDep
) -> list[CommandPublic]:
    return await service.list_device_commands(session, device_id)
