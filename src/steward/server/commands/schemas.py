from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from steward.protocol import CommandStatus, CommandType
from steward.protocol.payloads import parse_payload

MAX_TIMEOUT_S = 24 * 3600
MIN_EXPIRY_S = 60
MAX_EXPIRY_S = 30 * 24 * 3600


class ScriptRequest(BaseModel):
    """What people send for a `script` command: the server resolves it to the exact text."""

    model_config = ConfigDict(extra="forbid")

    script_id: uuid.UUID
    version: int | None = Field(default=None, ge=1)
    params: dict[str, str | int | bool] = Field(default_factory=dict, max_length=64)


def first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid payload"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def normalised_payload(command_type: CommandType, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload checked against its type's model, with defaults filled in. Raises
    ValueError with a readable message."""
    try:
        if command_type is CommandType.SCRIPT:
            return ScriptRequest.model_validate(payload).model_dump(mode="json")
        return parse_payload(command_type, payload).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise ValueError(f"invalid payload: {first_error(exc)}") from None


class CommandCreate(BaseModel):
    """A command of any type; `payload` must fit the type (see protocol/payloads.py)."""

    model_config = ConfigDict(extra="forbid")

    type: CommandType
    payload: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    # Not delivered by then (the device stayed offline): expired. Default: the tenant's.
    expires_in_s: float | None = Field(default=None, ge=MIN_EXPIRY_S, le=MAX_EXPIRY_S)

    @model_validator(mode="after")
    def _payload_fits_type(self) -> CommandCreate:
        self.payload = normalised_payload(self.type, self.payload)
        return self


class CommandCreated(BaseModel):
    id: uuid.UUID
    status: CommandStatus
    risk: str = "low"
    risk_reasons: list[str] = []
    approvals_needed: int = 0


class RiskAssessment(BaseModel):
    """What the composer shows before submitting: the level, why, and whether it will wait."""

    risk: str
    reasons: list[str]
    needs_approval: bool
    approvals_needed: int = 0
    blocked: bool = False
    blocked_reason: str = ""


class Decision(BaseModel):
    """An approver's comment (optional) with an approve or deny."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=1000)


class ApprovalPublic(BaseModel):
    approver: str
    decision: str
    comment: str
    at: datetime


class TransitionPublic(BaseModel):
    status: str
    at: datetime
    actor: str
    note: str


class CommandPublic(BaseModel):
    id: uuid.UUID
    device_id: uuid.UUID
    job_id: uuid.UUID | None = None
    type: str
    payload: dict[str, object]
    status: CommandStatus
    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    error: str
    timeout_s: float
    created_by: str
    risk: str = "low"
    risk_reasons: list[str] = []
    approvals_needed: int = 0
    created_at: datetime
    expires_at: datetime | None = None
    approval_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    sent_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class CommandSummary(BaseModel):
    """A row of the command history (no output)."""

    id: uuid.UUID
    device_id: uuid.UUID
    hostname: str = ""
    job_id: uuid.UUID | None = None
    type: str
    summary: str
    status: CommandStatus
    exit_code: int | None
    created_by: str
    risk: str
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, command: Any, hostname: str, summary: str) -> CommandSummary:
        """The row for a stored command (a `Command`) on the device named `hostname`."""
        return cls(
            id=command.id,
            device_id=command.device_id,
            hostname=hostname,
            job_id=command.job_id,
            type=command.type,
            summary=summary,
            status=CommandStatus(command.status),
            exit_code=command.exit_code,
            created_by=command.created_by,
            risk=command.risk,
            created_at=command.created_at,
            finished_at=command.finished_at,
        )


class CommandDetail(CommandPublic):
    transitions: list[TransitionPublic] = []
    approvals: list[ApprovalPublic] = []
