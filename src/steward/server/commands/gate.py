"""Whether a principal may run a command on a device, and whether it must wait: role, scope
and time window (accounts/principal.py), the tenant's policy rules (commands/policy.py), the
risk (commands/risk.py). One verdict for a single command and for each device of a job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission
from steward.server.accounts.policy import SecuritySettings, security_settings
from steward.server.accounts.principal import DeviceLike, Principal, authorize
from steward.server.commands.policy import CommandPolicy, command_policy, evaluate
from steward.server.commands.risk import Assessment, Risk, assess
from steward.server.errors import PermissionDenied
from steward.server.tenancy.models import Group, Tenant


@dataclass
class TenantRules:
    security: SecuritySettings
    policy: CommandPolicy
    group_names: dict[uuid.UUID, str] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession, tenant_id: uuid.UUID) -> TenantRules:
        tenant = await session.get(Tenant, tenant_id)
        settings = tenant.settings if tenant is not None else {}
        rows = await session.execute(select(Group.id, Group.name))
        return cls(
            security=security_settings(settings),
            policy=command_policy(settings),
            group_names={group_id: name for group_id, name in rows.all()},
        )


@dataclass(frozen=True)
class Verdict:
    assessment: Assessment
    approvals_needed: int  # 0: runs without approval
    why_approval: str = ""


class Blocked(PermissionDenied):
    """Refused by a policy rule: the message names the rule."""

    def __init__(self, message: str, rule_id: str) -> None:
        super().__init__(message, code="blocked_by_policy")
        self.rule_id = rule_id


def risk_of(command_type: str, payload: dict[str, Any]) -> Assessment:
    """Scripts are read like shell text (their body), other types by their kind."""
    if command_type == "script" and payload.get("interpreter") in {"sh", "bash"}:
        return assess("shell", {"command": payload.get("body", "")})
    return assess(command_type, payload)


@dataclass
class Memo:
    """For one submission to many devices: what does not depend on the device is worked out
    once (the risk of the payload; the policy per group), not once per device."""

    risk: Assessment | None = None
    policies: dict[Any, Any] = field(default_factory=dict)


def judge(
    principal: Principal,
    rules: TenantRules,
    device: DeviceLike,
    command_type: str,
    payload: dict[str, Any],
    memo: Memo | None = None,
) -> Verdict:
    """Raises PermissionDenied / NotFound (role, scope, window) or `Blocked` (a rule)."""
    memo = memo or Memo()
    decision = authorize(
        principal,
        Permission.COMMAND_RUN,
        device=device,
        command_type=command_type,
        command_payload=payload,
    )
    policy = memo.policies.get(device.group_id)
    if policy is None:
        policy = memo.policies[device.group_id] = evaluate(
            rules.policy,
            role=str(principal.role),
            group_id=device.group_id,
            group_name=rules.group_names.get(device.group_id),
            command_type=command_type,
            payload=payload,
        )
    if policy.blocked:
        rule = policy.blocked_by.id if policy.blocked_by is not None else ""
        raise Blocked(policy.reason, rule)
    assessment = memo.risk = memo.risk or risk_of(command_type, payload)
    high = assessment.level is Risk.HIGH
    why = ""
    if decision.needs_approval:
        why = "your account requires approval"
    elif policy.approval_by is not None:
        why = f"rule {policy.approval_by.id!r} requires approval"
    elif high and rules.security.approval_for_high_risk:
        why = "high risk"
    if not why:
        return Verdict(assessment, 0)
    two = high and rules.security.two_approvers_for_high_risk
    return Verdict(assessment, 2 if two else 1, why)
