"""A tenant's security settings (kept in `Tenant.settings["security"]`)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from steward.server.accounts.models import Role


class MfaRequirement(StrEnum):
    OFF = "off"
    ALL = "all"
    ROLES = "roles"  # the roles in `mfa_roles`


class StepUp(StrEnum):
    OFF = "off"
    IF_ENROLLED = "if_enrolled"  # users with MFA confirm a fresh code; others are not asked
    REQUIRED = "required"  # everyone; users without MFA cannot do step-up actions


class SecuritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mfa_required: MfaRequirement = MfaRequirement.OFF
    mfa_roles: list[Role] = Field(default_factory=list)
    step_up: StepUp = StepUp.IF_ENROLLED
    step_up_max_age_s: int = Field(default=300, ge=30, le=3600)
    session_idle_timeout_min: int = Field(default=60, ge=5, le=24 * 60)
    session_lifetime_h: int = Field(default=12, ge=1, le=30 * 24)
    password_min_length: int = Field(default=10, ge=10, le=128)
    # High-risk commands (commands/risk.py) wait for someone else's approval.
    approval_for_high_risk: bool = True
    # ... by two different people (never the requester).
    two_approvers_for_high_risk: bool = False
    # A command or job nobody decided on within this time expires.
    approval_expiry_h: int = Field(default=24, ge=1, le=7 * 24)
    # A command not delivered within this time (the device stayed offline) expires.
    command_expiry_h: int = Field(default=24, ge=1, le=30 * 24)
    # Console and API only accept these source networks (empty: any). Agents are not affected.
    ip_allowlist: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("ip_allowlist")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network (CIDR)") from None
        return list(dict.fromkeys(networks))

    def mfa_required_for(self, role: Role | str) -> bool:
        if self.mfa_required is MfaRequirement.ALL:
            return True
        return self.mfa_required is MfaRequirement.ROLES and role in self.mfa_roles


def security_settings(tenant_settings: dict[str, Any] | None) -> SecuritySettings:
    raw = (tenant_settings or {}).get("security") or {}
    try:
        return SecuritySettings.model_validate(raw)
    except ValueError:
        return SecuritySettings()


def address_allowed(address: str, allowlist: list[str] | tuple[str, ...]) -> bool:
    if not allowlist:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(network) for network in allowlist)
