from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from steward.protocol import CommandStatus


class ShellPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=64 * 1024)
    interpreter: Literal["sh", "bash", "cmd", "powershell"] | None = None


class ShellCommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["shell"]
    payload: ShellPayload
    timeout_s: float | None = Field(default=None, gt=0, le=24 * 3600)


# A discriminated union: later command types add a member here.
CommandCreate = Annotated[ShellCommandCreate, Field(discriminator="type")]


class CommandCreated(BaseModel):
    id: uuid.UUID
    status: CommandStatus
    risk: str = "low"
    risk_reasons: list[str] = []


class RiskAssessment(BaseModel):
    """What the composer shows before submitting: the level, why, and whether it will wait."""

    risk: str
    reasons: list[str]
    needs_approval: bool


class CommandPublic(BaseModel):
    id: uuid.UUID
    device_id: uuid.UUID
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
    created_at: datetime
    sent_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
