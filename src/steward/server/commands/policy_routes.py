"""The tenant's command policy: /api/v1/tenant/command-policy (read, replace, try a command)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandType
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.commands.policy import (
    CommandPolicy,
    Effect,
    command_policy,
    evaluate,
    save_command_policy,
)
from steward.server.deps import AuditorDep, SessionDep, require
from steward.server.devices.access import device_for
from steward.server.tenancy.models import Group, Tenant

TenantManager = Annotated[Principal, require(P.TENANT_MANAGE)]
Runner = Annotated[Principal, require(P.COMMAND_RUN)]

router = APIRouter(prefix="/api/v1", tags=["command policy"])


class PolicyTest(BaseModel):
    """A command to try against the policy, as the caller, on a device or on none."""

    model_config = ConfigDict(extra="forbid")

    type: CommandType
    payload: dict[str, Any] = Field(default_factory=dict, max_length=50)
    device_id: uuid.UUID | None = None


class PolicyVerdict(BaseModel):
    blocked: bool
    needs_approval: bool
    code: str  # command_denied | command_not_allowed | "" (the code a refusal would carry)
    rule: str | None  # the deny or approval rule that decided, if one did
    effect: Effect | None
    reason: str


async def _tenant(session: AsyncSession, principal: Principal) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.id == principal.tenant_id))
    assert tenant is not None  # the principal's own tenant
    return tenant


@router.get("/tenant/command-policy", response_model=CommandPolicy)
async def get_policy(principal: TenantManager, session: SessionDep) -> CommandPolicy:
    return command_policy((await _tenant(session, principal)).settings)


@router.put("/tenant/command-policy", response_model=CommandPolicy)
async def put_policy(
    body: CommandPolicy, principal: TenantManager, auditor: AuditorDep, session: SessionDep
) -> CommandPolicy:
    """Replace the rules (in order). Refused with 422 `invalid_input` when a rule is not valid:
    an unknown role or type, an unreadable pattern, a duplicate id."""
    await save_command_policy(session, auditor, await _tenant(session, principal), body)
    return body


@router.post("/tenant/command-policy/test", response_model=PolicyVerdict)
async def test_policy(body: PolicyTest, principal: Runner, session: SessionDep) -> PolicyVerdict:
    """What the policy would say of this command for the caller (their role, the device's
    group), without running anything. Without a device only rules for every group count."""
    group_id: uuid.UUID | None = None
    group_name: str | None = None
    if body.device_id is not None:
        device = await device_for(session, principal, P.COMMAND_RUN, body.device_id)
        group = await session.get(Group, device.group_id)
        group_id, group_name = device.group_id, group.name if group else None
    decision = evaluate(
        command_policy((await _tenant(session, principal)).settings),
        role=principal.role.value,
        group_id=group_id,
        group_name=group_name,
        command_type=body.type.value,
        payload=body.payload,
    )
    deciding = decision.blocked_by or (decision.approval_by if decision.needs_approval else None)
    return PolicyVerdict(
        blocked=decision.blocked,
        needs_approval=decision.needs_approval,
        code=decision.code,
        rule=deciding.id if deciding else None,
        effect=deciding.effect if deciding else None,
        reason=decision.reason,
    )
